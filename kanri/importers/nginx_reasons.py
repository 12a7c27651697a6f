"""Why an nginx directive is not carried over, or why kanri needs no setting for it.

Each entry matches a directive name exactly, or every name that starts with it
when it ends in ``*``. The first match wins, and HANDLED is looked up before DROPPED.
"""

from __future__ import annotations

TLS = (
    "kanri serves plain HTTP; terminate TLS in front (a load balancer, Caddy, or nginx itself)"
    " and forward to kanri's listen address"
)
_COMPRESS = (
    "kanri does not compress responses on the fly; it serves precompressed .gz/.br files"
    " found next to static files"
)
_LOGS = "kanri writes its own access log ([proxy] access_log) and its own error log"
_PROCESS = "a setting of the nginx process itself"
_HTTP_ONLY = "kanri proxies HTTP only: run the app as an HTTP server listening on $PORT"
_UNCHANGED = "kanri passes requests and responses through unchanged"
_NO_VARIABLES = "kanri has no variables or conditions; routes match host and path prefix"
_BUFFERS = "kanri sizes its buffers itself"
_NGINX_TUNING = "tuning of nginx's own internals"

DROPPED: tuple[tuple[str, str], ...] = (
    ("ssl*", TLS),
    ("proxy_ssl*", "kanri connects to its apps over plain HTTP on 127.0.0.1"),
    ("http2", "kanri speaks HTTP/1.1; the TLS terminator in front can speak HTTP/2"),
    ("http3", "kanri speaks HTTP/1.1; the TLS terminator in front can speak HTTP/3"),
    ("quic*", "kanri speaks HTTP/1.1; the TLS terminator in front can speak HTTP/3"),
    ("add_trailer", "kanri adds no custom trailers"),
    ("gzip*", _COMPRESS),
    ("brotli*", _COMPRESS),
    (
        "add_header",
        "kanri adds no custom response headers (static routes send Cache-Control"
        " from `cache`); set them in the app or in front",
    ),
    ("more_set_headers", "kanri adds no custom response headers; set them in the app"),
    ("rewrite", "kanri has no rewrites or redirects; do them in the app or in front of kanri"),
    ("return", "kanri has no rewrites or redirects; do them in the app or in front of kanri"),
    ("auth_*", "kanri has no authentication; do it in the app"),
    ("satisfy", "kanri has no authentication; do it in the app"),
    ("allow", "kanri has no IP access rules; use a firewall or the app"),
    ("deny", "kanri has no IP access rules; use a firewall or the app"),
    ("limit_*", "kanri has no per-client rate or connection limits"),
    ("proxy_cache*", "kanri does not cache responses"),
    ("proxy_no_cache", "kanri does not cache responses"),
    ("access_log", _LOGS),
    ("error_log", _LOGS),
    ("log_format", _LOGS),
    ("log_not_found", _LOGS),
    ("open_log_file_cache", _LOGS),
    ("rewrite_log", _LOGS),
    ("error_page", "kanri sends its own short error pages (502, 503, 504...)"),
    ("proxy_intercept_errors", "kanri sends the app's error responses unchanged"),
    ("fastcgi_*", _HTTP_ONLY),
    ("uwsgi_*", _HTTP_ONLY),
    ("scgi_*", _HTTP_ONLY),
    ("grpc_*", _HTTP_ONLY),
    ("memcached_*", _HTTP_ONLY),
    ("proxy_hide_header", _UNCHANGED),
    ("proxy_pass_header", _UNCHANGED),
    ("proxy_ignore_headers", _UNCHANGED),
    ("proxy_set_body", _UNCHANGED),
    ("proxy_method", _UNCHANGED),
    ("proxy_cookie_*", _UNCHANGED),
    (
        "proxy_set_header",
        "kanri sets Host, X-Forwarded-For/-Proto/-Host and X-Real-IP itself"
        " and no other request headers",
    ),
    ("proxy_redirect", "kanri passes Location headers unchanged (nginx's `proxy_redirect off`)"),
    ("real_ip_*", "kanri takes the client address from the connection"),
    ("set_real_ip_from", "kanri takes the client address from the connection"),
    ("map", _NO_VARIABLES),
    ("geo", _NO_VARIABLES),
    ("if", _NO_VARIABLES),
    ("set", _NO_VARIABLES),
    ("split_clients", _NO_VARIABLES),
    ("sub_filter*", "kanri does not rewrite response bodies"),
    ("autoindex*", "kanri does not list directories"),
    ("charset*", "kanri sends files as they are, with a Content-Type from the file name"),
    ("source_charset", "kanri sends files as they are"),
    ("resolver*", "kanri proxies only to its own apps on 127.0.0.1"),
    ("internal", "kanri has no internal-only routes"),
    (
        "keepalive_requests",
        "kanri serves any number of requests on a connection until keepalive_timeout",
    ),
    ("keepalive_time", "kanri closes idle connections after keepalive_timeout only"),
    ("stream", "kanri proxies HTTP only"),
    ("mail", "kanri proxies HTTP only"),
    ("user", _PROCESS),
    ("pid", _PROCESS),
    ("worker_*", _PROCESS),
    ("load_module", _PROCESS),
    ("daemon", _PROCESS),
    ("master_process", _PROCESS),
    ("thread_pool", _PROCESS),
    ("env", _PROCESS),
    ("timer_resolution", _PROCESS),
    ("lock_file", _PROCESS),
    ("pcre_jit", _PROCESS),
    ("multi_accept", _PROCESS),
    ("use", _PROCESS),
    ("accept_mutex*", _PROCESS),
)

HANDLED: tuple[tuple[str, str], ...] = (
    ("proxy_http_version", "kanri speaks HTTP/1.1 with keep-alive to its apps"),
    ("proxy_buffering", "kanri streams responses without holding them back"),
    ("proxy_request_buffering", "kanri streams request bodies"),
    ("proxy_buffer*", _BUFFERS),
    ("proxy_busy_buffers_size", _BUFFERS),
    ("proxy_max_temp_file_size", _BUFFERS),
    ("proxy_temp_*", _BUFFERS),
    ("client_body_buffer_size", _BUFFERS),
    ("client_header_buffer_size", _BUFFERS),
    ("client_body_temp_path", _BUFFERS),
    ("output_buffers", _BUFFERS),
    ("proxy_cache_bypass", "kanri does not cache responses, so there is nothing to bypass"),
    ("proxy_next_upstream*", "kanri retries a request that failed to connect on another instance"),
    ("proxy_pass_request_*", "kanri passes the client's headers and body to the app"),
    ("sendfile*", "kanri uses sendfile for static files"),
    ("tcp_nopush", "kanri uses sendfile for static files"),
    ("tcp_nodelay", "kanri sets TCP_NODELAY itself"),
    ("types", "kanri has its own MIME types"),
    ("default_type", "kanri has its own MIME types"),
    ("chunked_transfer_encoding", "kanri streams with chunked encoding when needed"),
    ("etag", "kanri sends ETag and Last-Modified and answers 304"),
    ("if_modified_since", "kanri sends ETag and Last-Modified and answers 304"),
    (
        "gzip_static",
        "kanri serves .gz and .br files next to static files to clients that accept them",
    ),
    (
        "brotli_static",
        "kanri serves .gz and .br files next to static files to clients that accept them",
    ),
    ("open_file_cache*", _NGINX_TUNING),
    ("aio", _NGINX_TUNING),
    ("directio", _NGINX_TUNING),
    ("server_names_hash_*", _NGINX_TUNING),
    ("types_hash_*", _NGINX_TUNING),
    ("variables_hash_*", _NGINX_TUNING),
    ("map_hash_*", _NGINX_TUNING),
    ("proxy_headers_hash_*", _NGINX_TUNING),
    ("reset_timedout_connection", _NGINX_TUNING),
    ("lingering_*", _NGINX_TUNING),
)

# proxy_set_header values kanri sends by itself; `Connection "upgrade"` is WebSocket support.
STANDARD_HEADERS = frozenset(
    {"host", "x-real-ip", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"}
    | {"upgrade", "connection"}
)
HEADERS_HANDLED = (
    "kanri keeps Host, adds X-Forwarded-For/-Proto/-Host and X-Real-IP, and upgrades"
    " WebSockets without configuration"
)


def lookup(table: tuple[tuple[str, str], ...], name: str) -> str | None:
    """The reason for ``name`` in a table, or None."""
    for pattern, reason in table:
        if (pattern.endswith("*") and name.startswith(pattern[:-1])) or name == pattern:
            return reason
    return None
