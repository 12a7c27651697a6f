# Types of the C module kanri/proxy/_heads.c (see its opening comment).

RequestHead = tuple[
    int,  # end: the offset just after the head's blank line
    bytes,  # method: b"GET" or b"HEAD"
    bytes,  # url
    bytes,  # host
    bytes,  # forwarded: the header lines passed on, b"Name: value\r\n" each
    bytes | None,  # x-forwarded-for
    bytes | None,  # referer
    bytes | None,  # user-agent
    bytes | None,  # accept-encoding
    bytes | None,  # if-none-match
    bytes | None,  # if-modified-since
    bytes | None,  # range
    bytes | None,  # if-range
]
ResponseHead = tuple[
    int,  # status
    bytes,  # forwarded: the header lines passed on
    int,  # body_start: the offset of the body, which ends with the data
    bool,  # keep_alive: the upstream connection may be reused
]

def parse_request(data: bytes, start: int, max_head: int, /) -> RequestHead | None: ...
def parse_response(data: bytes, head_request: bool, /) -> ResponseHead | None: ...
def request_kind(name: bytes, /) -> int: ...
def response_kind(name: bytes, /) -> int: ...
