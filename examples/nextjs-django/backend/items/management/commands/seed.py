from django.core.management.base import BaseCommand

from items.models import Item

ITEMS = [
    ("Supervise any process", "Gunicorn, Next.js, a Go binary: anything with a command line."),
    ("Proxy to ready instances only", "Requests go to instances that passed their health check."),
    (
        "Serve static files from disk",
        "ETag, Last-Modified, Range and Cache-Control, as nginx does.",
    ),
    ("Reload without downtime", "New instance ready first, old one drained, then stopped."),
    ("One file for the whole stack", "kanri.toml replaces ecosystem.config.js and nginx.conf."),
]


class Command(BaseCommand):
    help = "Insert the example items; running it again adds nothing."

    def handle(self, *args: object, **options: object) -> None:
        created = 0
        for title, summary in ITEMS:
            _, was_created = Item.objects.get_or_create(title=title, defaults={"summary": summary})
            created += was_created
        self.stdout.write(f"seed: {created} item(s) added, {Item.objects.count()} in the database")
