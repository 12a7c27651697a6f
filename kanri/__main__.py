from kanri.cli import main

main()
