/* The common request and response heads, parsed in one call.

Most requests a proxy sees are a GET or HEAD with a dozen plain headers and no
body, and most answers to them are one segment: a status line, a few headers,
a Content-Length body. For those, llhttp (httptools) calls back into Python once
per header; these functions read the whole head in C and hand back what the
proxy needs in one tuple.

They take only a strict subset of what llhttp accepts: anything unusual
(another method or version, a body, Connection other than keep-alive, Upgrade,
Expect, Transfer-Encoding, a duplicate Host or Content-Length, any byte outside
the plain printable set, whitespace llhttp could read differently, a head that
is not complete in the buffer) returns None, and the caller feeds the same
bytes to llhttp, which stays the reference parser and the smuggling defence.
tests/proxy/test_heads.py checks both give the same result wherever this one
answers.

parse_request(data, start, max_head) -> None | (end, method, url, host,
    forwarded, x_forwarded_for, referer, user_agent, accept_encoding,
    if_none_match, if_modified_since, range, if_range)
parse_response(data, head_request) -> None | (status, forwarded, body_start,
    keep_alive)

``forwarded`` is the header lines the proxy passes on, each as
``Name: value\r\n``, in the order received: the same bytes the llhttp path
builds. The header kinds match REQUEST_HEADERS in exchange.py and the response
table in upstream.py (request_kind() and response_kind() expose them to the
tests that check it).
*/

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#define MAX_HEADERS 100

/* Request header kinds: the H_* values of kanri/proxy/exchange.py. */
enum {
    H_PASS = -1,
    H_HOST = 0,
    H_CL = 1,
    H_TE = 2,
    H_CONNECTION = 3,
    H_DROP = 4,
    H_XFF = 5,
    H_EXPECT = 6,
    H_UPGRADE = 7,
    H_REFERER = 8,
    H_UA = 9,
    H_AE = 10,
    H_INM = 11,
    H_IMS = 12,
    H_RANGE = 13,
    H_IF_RANGE = 14,
};

/* Response header kinds: the R_* values of kanri/proxy/upstream.py. */
enum { R_PASS = -1, R_DROP = 0, R_CL = 1, R_TE = 2, R_UPGRADE = 3 };

typedef struct {
    const char *name; /* lower case */
    Py_ssize_t len;
    int kind;
} Known;

#define K(name, kind) {name, sizeof(name) - 1, kind}

static const Known REQUEST_KNOWN[] = {
    K("host", H_HOST),
    K("content-length", H_CL),
    K("transfer-encoding", H_TE),
    K("connection", H_CONNECTION),
    K("keep-alive", H_DROP),
    K("proxy-connection", H_DROP),
    K("proxy-authorization", H_DROP),
    K("te", H_DROP),
    K("trailer", H_DROP),
    K("http2-settings", H_DROP),
    K("x-real-ip", H_DROP),
    K("x-forwarded-proto", H_DROP),
    K("x-forwarded-host", H_DROP),
    K("x-forwarded-for", H_XFF),
    K("expect", H_EXPECT),
    K("upgrade", H_UPGRADE),
    K("referer", H_REFERER),
    K("user-agent", H_UA),
    K("accept-encoding", H_AE),
    K("if-none-match", H_INM),
    K("if-modified-since", H_IMS),
    K("range", H_RANGE),
    K("if-range", H_IF_RANGE),
};

static const Known RESPONSE_KNOWN[] = {
    K("connection", R_DROP),
    K("keep-alive", R_DROP),
    K("proxy-connection", R_DROP),
    K("proxy-authenticate", R_DROP),
    K("te", R_DROP),
    K("trailer", R_DROP),
    K("server", R_DROP),
    K("date", R_DROP),
    K("content-length", R_CL),
    K("transfer-encoding", R_TE),
    K("upgrade", R_UPGRADE),
};

#undef K

/* Character classes. TOKEN: RFC 9110 tchar. TARGET: what a request-target may
   hold here (printable ASCII but '#', which no client sends). VALUE: printable
   ASCII, space and tab; obs-text (0x80-0xFF) is left to llhttp. */
enum { C_TOKEN = 1, C_TARGET = 2, C_VALUE = 4, C_REASON = 8 };
static unsigned char CLASS[256];

static void
init_classes(void)
{
    for (int c = 0x21; c <= 0x7e; c++) {
        CLASS[c] |= C_VALUE | C_REASON;
        if (c != '#') {
            CLASS[c] |= C_TARGET;
        }
        if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
            strchr("!#$%&'*+-.^_`|~", c) != NULL) {
            CLASS[c] |= C_TOKEN;
        }
    }
    CLASS[' '] |= C_VALUE | C_REASON;
    CLASS['\t'] |= C_VALUE | C_REASON;
}

static int
kind_of(const Known *table, size_t n, const char *name, Py_ssize_t len, int otherwise)
{
    for (size_t i = 0; i < n; i++) {
        if (table[i].len == len) {
            Py_ssize_t j = 0;
            while (j < len && (name[j] | 0x20) == table[i].name[j]) {
                j++;
            }
            /* '|0x20' maps '-' (0x2d) to itself and letters to lower case; a
               token character that is neither cannot match a name here. */
            if (j == len) {
                return table[i].kind;
            }
        }
    }
    return otherwise;
}

static int
equals_lower(const char *p, Py_ssize_t len, const char *lower)
{
    Py_ssize_t n = (Py_ssize_t)strlen(lower);
    if (len != n) {
        return 0;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        char c = p[i];
        if (c >= 'A' && c <= 'Z') {
            c = (char)(c + 32);
        }
        if (c != lower[i]) {
            return 0;
        }
    }
    return 1;
}

typedef struct {
    const char *name;
    Py_ssize_t name_len;
    const char *value;
    Py_ssize_t value_len;
    int kind;
    int forward; /* passed on to the other side */
} Field;

/* Read header lines from *pp up to and including the blank line. Returns the
   number of fields, or -1 if this head is not one for the fast path. */
static int
read_fields(const char **pp, const char *end, Field *fields, const Known *table, size_t n,
            int otherwise)
{
    const char *p = *pp;
    int count = 0;
    for (;;) {
        if (end - p < 2) {
            return -1;
        }
        if (p[0] == '\r') {
            if (p[1] != '\n') {
                return -1;
            }
            *pp = p + 2;
            return count;
        }
        if (count == MAX_HEADERS) {
            return -1;
        }
        const char *name = p;
        while (p < end && (CLASS[(unsigned char)*p] & C_TOKEN)) {
            p++;
        }
        if (p == name || p >= end || *p != ':') {
            return -1;
        }
        Field *f = &fields[count++];
        f->name = name;
        f->name_len = p - name;
        p++;
        while (p < end && (*p == ' ' || *p == '\t')) {
            p++;
        }
        const char *value = p;
        while (p < end && (CLASS[(unsigned char)*p] & C_VALUE)) {
            p++;
        }
        if (end - p < 2 || p[0] != '\r' || p[1] != '\n') {
            return -1;
        }
        /* Empty values and trailing whitespace are llhttp's to judge. */
        if (p == value || p[-1] == ' ' || p[-1] == '\t') {
            return -1;
        }
        f->value = value;
        f->value_len = p - value;
        f->kind = kind_of(table, n, f->name, f->name_len, otherwise);
        f->forward = 0;
        p += 2;
    }
}

static Py_ssize_t
line_size(const Field *f)
{
    return f->name_len + 2 + f->value_len + 2;
}

static char *
put_line(char *out, const Field *f)
{
    memcpy(out, f->name, (size_t)f->name_len);
    out += f->name_len;
    *out++ = ':';
    *out++ = ' ';
    memcpy(out, f->value, (size_t)f->value_len);
    out += f->value_len;
    *out++ = '\r';
    *out++ = '\n';
    return out;
}

/* The fields marked forward, each as "Name: value\r\n", in one bytes object. */
static PyObject *
forwarded_lines(const Field *fields, int count)
{
    Py_ssize_t size = 0;
    for (int i = 0; i < count; i++) {
        if (fields[i].forward) {
            size += line_size(&fields[i]);
        }
    }
    PyObject *block = PyBytes_FromStringAndSize(NULL, size);
    if (block == NULL) {
        return NULL;
    }
    char *out = PyBytes_AS_STRING(block);
    for (int i = 0; i < count; i++) {
        if (fields[i].forward) {
            out = put_line(out, &fields[i]);
        }
    }
    return block;
}

static PyObject *METHOD_GET;
static PyObject *METHOD_HEAD;

static PyObject *
value_or_none(const Field *f)
{
    if (f == NULL) {
        Py_RETURN_NONE;
    }
    return PyBytes_FromStringAndSize(f->value, f->value_len);
}

static PyObject *
parse_request(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 3 || !PyBytes_CheckExact(args[0])) {
        PyErr_SetString(PyExc_TypeError, "parse_request(data: bytes, start: int, max_head: int)");
        return NULL;
    }
    Py_ssize_t start = PyLong_AsSsize_t(args[1]);
    Py_ssize_t max_head = PyLong_AsSsize_t(args[2]);
    if ((start == -1 || max_head == -1) && PyErr_Occurred()) {
        return NULL;
    }
    Py_ssize_t size = PyBytes_GET_SIZE(args[0]);
    if (start < 0 || start > size) {
        PyErr_SetString(PyExc_ValueError, "start is outside data");
        return NULL;
    }
    const char *base = PyBytes_AS_STRING(args[0]);
    const char *p = base + start;
    const char *end = base + size;
    if (max_head > 0 && end - p > max_head) {
        end = p + max_head; /* a head that does not end by then is llhttp's to refuse */
    }

    PyObject *method;
    if (end - p >= 4 && memcmp(p, "GET ", 4) == 0) {
        method = METHOD_GET;
        p += 4;
    } else if (end - p >= 5 && memcmp(p, "HEAD ", 5) == 0) {
        method = METHOD_HEAD;
        p += 5;
    } else {
        Py_RETURN_NONE;
    }
    const char *url = p;
    if (p >= end || *p != '/') {
        Py_RETURN_NONE;
    }
    while (p < end && (CLASS[(unsigned char)*p] & C_TARGET)) {
        p++;
    }
    const char *url_end = p;
    if (end - p < 11 || memcmp(p, " HTTP/1.1\r\n", 11) != 0) {
        Py_RETURN_NONE;
    }
    p += 11;

    Field fields[MAX_HEADERS];
    int count = read_fields(&p, end, fields, REQUEST_KNOWN,
                            sizeof(REQUEST_KNOWN) / sizeof(REQUEST_KNOWN[0]), H_PASS);
    if (count < 0) {
        Py_RETURN_NONE;
    }
    const Field *host = NULL, *xff = NULL;
    const Field *seen[H_IF_RANGE + 1] = {NULL};
    /* The size http.py holds against max_header_size: the target, and each header's
       name and value plus 4. Not the bytes on the wire, which may be fewer. */
    Py_ssize_t counted = url_end - url;
    for (int i = 0; i < count; i++) {
        counted += fields[i].name_len + fields[i].value_len + 4;
    }
    if (max_head > 0 && counted > max_head) {
        Py_RETURN_NONE;
    }
    for (int i = 0; i < count; i++) {
        Field *f = &fields[i];
        switch (f->kind) {
        case H_HOST:
            if (host != NULL) {
                Py_RETURN_NONE;
            }
            host = f;
            break;
        case H_CONNECTION:
            if (!equals_lower(f->value, f->value_len, "keep-alive")) {
                Py_RETURN_NONE;
            }
            continue;
        case H_DROP:
            /* llhttp reads Proxy-Connection as it reads Connection. */
            if (equals_lower(f->name, f->name_len, "proxy-connection") &&
                !equals_lower(f->value, f->value_len, "keep-alive")) {
                Py_RETURN_NONE;
            }
            continue;
        case H_XFF:
            if (xff != NULL) {
                Py_RETURN_NONE;
            }
            xff = f;
            continue;
        case H_CL:
        case H_TE:
        case H_EXPECT:
        case H_UPGRADE:
            Py_RETURN_NONE;
        case H_PASS:
            break;
        default:
            seen[f->kind] = f; /* the last one counts, as on the llhttp path */
            break;
        }
        f->forward = 1;
    }
    if (host == NULL) {
        Py_RETURN_NONE;
    }

    PyObject *block = forwarded_lines(fields, count);
    if (block == NULL) {
        return NULL;
    }
    PyObject *result = PyTuple_New(13);
    if (result == NULL) {
        Py_DECREF(block);
        return NULL;
    }
    Py_INCREF(method);
    PyTuple_SET_ITEM(result, 0, PyLong_FromSsize_t(p - base));
    PyTuple_SET_ITEM(result, 1, method);
    PyTuple_SET_ITEM(result, 2, PyBytes_FromStringAndSize(url, url_end - url));
    PyTuple_SET_ITEM(result, 3, value_or_none(host));
    PyTuple_SET_ITEM(result, 4, block);
    PyTuple_SET_ITEM(result, 5, value_or_none(xff));
    for (int kind = H_REFERER; kind <= H_IF_RANGE; kind++) {
        PyTuple_SET_ITEM(result, 6 + kind - H_REFERER, value_or_none(seen[kind]));
    }
    for (Py_ssize_t i = 0; i < 13; i++) {
        if (PyTuple_GET_ITEM(result, i) == NULL) {
            Py_DECREF(result);
            return NULL;
        }
    }
    return result;
}

static PyObject *
parse_response(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 2 || !PyBytes_CheckExact(args[0])) {
        PyErr_SetString(PyExc_TypeError, "parse_response(data: bytes, head_request: bool)");
        return NULL;
    }
    int head_request = PyObject_IsTrue(args[1]);
    if (head_request < 0) {
        return NULL;
    }
    const char *base = PyBytes_AS_STRING(args[0]);
    const char *p = base;
    const char *end = base + PyBytes_GET_SIZE(args[0]);
    if (end - p < 13 || memcmp(p, "HTTP/1.1 ", 9) != 0) {
        Py_RETURN_NONE;
    }
    p += 9;
    int status = 0;
    for (int i = 0; i < 3; i++) {
        if (p[i] < '0' || p[i] > '9') {
            Py_RETURN_NONE;
        }
        status = status * 10 + (p[i] - '0');
    }
    p += 3;
    /* 1xx, 204 and 304 frame their bodies differently: llhttp's. */
    if (status < 200 || status > 599 || status == 204 || status == 304 || *p != ' ') {
        Py_RETURN_NONE;
    }
    p++;
    while (p < end && (CLASS[(unsigned char)*p] & C_REASON)) {
        p++;
    }
    if (end - p < 2 || p[0] != '\r' || p[1] != '\n') {
        Py_RETURN_NONE;
    }
    p += 2;

    Field fields[MAX_HEADERS];
    int count = read_fields(&p, end, fields, RESPONSE_KNOWN,
                            sizeof(RESPONSE_KNOWN) / sizeof(RESPONSE_KNOWN[0]), R_PASS);
    if (count < 0) {
        Py_RETURN_NONE;
    }
    int keep_alive = 1;
    long long length = -1;
    for (int i = 0; i < count; i++) {
        Field *f = &fields[i];
        switch (f->kind) {
        case R_DROP:
            /* llhttp reads Proxy-Connection as it reads Connection. */
            if (equals_lower(f->name, f->name_len, "connection") ||
                equals_lower(f->name, f->name_len, "proxy-connection")) {
                if (equals_lower(f->value, f->value_len, "close")) {
                    keep_alive = 0;
                } else if (!equals_lower(f->value, f->value_len, "keep-alive")) {
                    Py_RETURN_NONE;
                }
            }
            continue;
        case R_CL:
            if (length >= 0 || f->value_len > 15) {
                Py_RETURN_NONE;
            }
            length = 0;
            for (Py_ssize_t j = 0; j < f->value_len; j++) {
                char c = f->value[j];
                if (c < '0' || c > '9') {
                    Py_RETURN_NONE;
                }
                length = length * 10 + (c - '0');
            }
            break;
        case R_TE:
        case R_UPGRADE:
            Py_RETURN_NONE;
        default:
            break;
        }
        f->forward = 1;
    }
    /* The whole message, and nothing after it: the next bytes belong to no one. */
    Py_ssize_t body_start = p - base;
    Py_ssize_t body = head_request ? 0 : (Py_ssize_t)length;
    if (length < 0 || end - p != body) {
        Py_RETURN_NONE;
    }

    PyObject *block = forwarded_lines(fields, count);
    if (block == NULL) {
        return NULL;
    }
    return Py_BuildValue("(iNnO)", status, block, body_start, keep_alive ? Py_True : Py_False);
}

static PyObject *
kind_for(PyObject *arg, const Known *table, size_t n, int otherwise)
{
    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "a header name (bytes)");
        return NULL;
    }
    return PyLong_FromLong(
        kind_of(table, n, PyBytes_AS_STRING(arg), PyBytes_GET_SIZE(arg), otherwise));
}

static PyObject *
request_kind(PyObject *self, PyObject *arg)
{
    (void)self;
    return kind_for(arg, REQUEST_KNOWN, sizeof(REQUEST_KNOWN) / sizeof(REQUEST_KNOWN[0]), H_PASS);
}

static PyObject *
response_kind(PyObject *self, PyObject *arg)
{
    (void)self;
    return kind_for(arg, RESPONSE_KNOWN, sizeof(RESPONSE_KNOWN) / sizeof(RESPONSE_KNOWN[0]),
                    R_PASS);
}

static PyMethodDef METHODS[] = {
    {"parse_request", (PyCFunction)(void (*)(void))parse_request, METH_FASTCALL,
     "A complete GET or HEAD head without a body, or None: feed llhttp instead."},
    {"parse_response", (PyCFunction)(void (*)(void))parse_response, METH_FASTCALL,
     "A complete Content-Length response in one buffer, or None: feed llhttp instead."},
    {"request_kind", request_kind, METH_O, "The kind this module gives a request header name."},
    {"response_kind", response_kind, METH_O,
     "The kind this module gives a response header name."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef MODULE = {
    PyModuleDef_HEAD_INIT, "kanri.proxy._heads",
    "Request and response heads the proxy sees most, parsed in one call (see _heads.c).", -1,
    METHODS, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__heads(void)
{
    init_classes();
    METHOD_GET = PyBytes_FromString("GET");
    METHOD_HEAD = PyBytes_FromString("HEAD");
    if (METHOD_GET == NULL || METHOD_HEAD == NULL) {
        return NULL;
    }
    return PyModule_Create(&MODULE);
}
