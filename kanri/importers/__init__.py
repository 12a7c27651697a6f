"""`kanri import`: bring a PM2 ecosystem file and an nginx config over to one kanri.toml.

pm2_read, yaml_subset   read ecosystem.config.js (with node), .json, .yaml
pm2, pm2_values         PM2 apps -> [apps.NAME]
nginx_parse             nginx syntax, includes
nginx, nginx_proxy      server blocks -> [[routes]] and [proxy]
build                   the join of both (by port), and app placeholders
document                the commented TOML text
cli                     the click group, registered by kanri.cli
"""

from kanri.importers.build import import_files, import_text
from kanri.importers.cli import import_group
from kanri.importers.errors import ImporterError, OutputExistsError, SourceError

__all__ = [
    "ImporterError",
    "OutputExistsError",
    "SourceError",
    "import_files",
    "import_group",
    "import_text",
]
