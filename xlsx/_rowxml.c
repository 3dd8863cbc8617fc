/* Worksheet <row> elements from rows of typed primitive cells, compiled.
 *
 * The writer's generated Python code (xlsx/rows.py, RowEncoder.row_code) writes each cell of
 * a common value with one f-string fragment, guarded by cheap checks; this module writes the
 * very same bytes for the same values, ~10x faster, and declines a row as soon as one of its
 * cells is not a common value (a non-finite float, text that needs escaping, an int past 2**53
 * that stands for a decimal...). The caller then writes that row through the Python encoder
 * and comes back for the rest, so only the easy cases have to be right here, and tests hold
 * both paths to the same bytes (tests/test_xlsx/test_native_rows.py).
 *
 * Input, as primitive_cells describes: `width` cells per row, 16 bytes each (int64 value or
 * double bits or text offset; int32 length: -1 NULL, 0 number, n bytes of text), and the
 * bytes the text cells point into. Output: UTF-8 bytes.
 *
 * Float text is CPython's own repr (PyOS_double_to_string, mode 'r'), so it is the same
 * shortest round-tripping digits by construction. Serials are computed with the operations
 * the Python code performs on exact doubles (IEEE division is correctly rounded), and the
 * module is compiled without floating-point contraction (setup.py).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <limits.h>
#include <stdint.h>
#include <string.h>

/* The float formatter and the tick serials need 128-bit integers: GCC and Clang have them on
 * 64-bit targets. Elsewhere the build stops here, setup.py goes on without this module, and
 * every row is written by the Python encoders (the same bytes, slower). */
#ifndef __SIZEOF_INT128__
#error "xlsx._rowxml needs unsigned __int128 (GCC or Clang on a 64-bit target)"
#endif

/* Largest integer a double holds exactly: the writer's MAX_EXACT_INT. */
#define MAX_EXACT_INT ((int64_t)9007199254740991LL)
/* Excel's cell text limit in UTF-16 units, halved: the writer's "plain text" bound in code
 * points (escape.MAX_CELL_UTF16_UNITS // 2), past which text goes to the truncating path. */
#define MAX_PLAIN_CHARS 16383
/* Decimal's str() switches to exponent notation below 1E-6 (xlsx/meanings.py). */
#define MAX_PLAIN_LEADING_ZEROS 5
/* The Decimal encoder writes plain text of at most this many characters. */
#define MAX_PLAIN_DECIMAL_LENGTH 15

#define CELL_BYTES 16
#define CAPSULE_NAME "xlsx._rowxml.plan"
/* SQL Server's largest decimal scale, decimal(38, 38). */
#define MAX_DECIMAL_SCALE 38
/* Bound of a tick count's origin and multiplier in a plan (2**62). */
#define PARAM_LIMIT (INT64_C(1) << 62)

enum op {
    OP_INT = 1,           /* a number within +/-MAX_EXACT_INT, else its digits as text */
    OP_FLOAT = 2,         /* a finite double: repr */
    OP_BOOL = 3,          /* 0 or 1 */
    OP_SCALED_FLOAT = 4,  /* v / 10**scale, scale <= 4: repr of the double, or whole digits */
    OP_SCALED_TEXT = 5,   /* v / 10**scale as Decimal's plain text */
    OP_DAYS = 6,          /* a date serial: v + offset */
    OP_TICKS = 7,         /* a datetime serial from a tick count */
    OP_BYTE_TEXT = 8,     /* ASCII text (bytes of an ASCII-compatible code page) */
    OP_UTF16_TEXT = 9,    /* UTF-16LE text */
    OP_LAST = OP_UTF16_TEXT
};

/* Why encode() stopped before `rows`: primitive_cells' STOP_* (exported below). */
enum stop { STOP_DONE = 0, STOP_ROOM = 1, STOP_DECLINED = 2 };

typedef struct {
    const char *s;
    Py_ssize_t n;
} text_t;

typedef struct {
    int op;
    /* open + row number + mid + value + close; alt_* for an int written as text. */
    text_t open, mid, close, alt_mid, alt_close;
    int64_t p[6];
    /* OP_BYTE_TEXT: the character of each byte (a single-byte code page), or NULL: ASCII only. */
    Py_UCS4 *table;
} column_t;

typedef struct {
    Py_ssize_t width;
    column_t *columns;
    PyObject *strings; /* keeps every text_t's bytes alive */
} plan_t;

/* -- output buffer -------------------------------------------------------------------------- */

typedef struct {
    char *buf;
    Py_ssize_t len, cap;
} out_t;

static int
reserve(out_t *o, Py_ssize_t more)
{
    if (o->len + more <= o->cap)
        return 0;
    Py_ssize_t cap = o->cap ? o->cap : 65536;
    while (cap < o->len + more)
        cap *= 2;
    char *buf = PyMem_Realloc(o->buf, cap);
    if (buf == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    o->buf = buf;
    o->cap = cap;
    return 0;
}

/* Callers reserve first: these never grow the buffer. */
static inline void
put(out_t *o, const char *s, Py_ssize_t n)
{
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}

static inline void
put_text(out_t *o, text_t t)
{
    put(o, t.s, t.n);
}

/* Decimal digits of an unsigned value; returns the count, digits at the end of buf[20]. */
static inline int
udigits(uint64_t v, char *end)
{
    int n = 0;
    do {
        *--end = (char)('0' + v % 10);
        v /= 10;
        n++;
    } while (v);
    return n;
}

static inline void
put_int(out_t *o, int64_t v)
{
    char tmp[24];
    char *end = tmp + sizeof tmp;
    uint64_t m = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    int n = udigits(m, end);
    if (v < 0) {
        end[-n - 1] = '-';
        n++;
    }
    put(o, end - n, n);
}

/* 10**k for k = 0..20 (10**20 > 2**64: 128 bits). */
#define MAX_POW10 20
#define E19 UINT64_C(10000000000000000000)
static const unsigned __int128 POW10[MAX_POW10 + 1] = {
    UINT64_C(1), UINT64_C(10), UINT64_C(100), UINT64_C(1000), UINT64_C(10000),
    UINT64_C(100000), UINT64_C(1000000), UINT64_C(10000000), UINT64_C(100000000),
    UINT64_C(1000000000), UINT64_C(10000000000), UINT64_C(100000000000),
    UINT64_C(1000000000000), UINT64_C(10000000000000), UINT64_C(100000000000000),
    UINT64_C(1000000000000000), UINT64_C(10000000000000000), UINT64_C(100000000000000000),
    UINT64_C(1000000000000000000), E19, (unsigned __int128)E19 * 10,
};

static inline unsigned __int128
pow10_128(int k)
{
    return POW10[k];
}

/* Python's repr of x, for 1e-4 <= |x| < 1e15 (and zeros), with integer arithmetic only:
 * the length written to text, or 0 when x is outside that range or a boundary case, which
 * PyOS_double_to_string then decides. CPython's repr is the shortest decimal that reads back
 * as x (David Gay's dtoa, mode 0), the nearest to x among the shortest, in plain notation in
 * this range ("0.0001", "12.5", "3.0"). With x = M * 2**-sh exactly, a decimal R / 10**f
 * reads back as x when it is within half the gap to x's neighbours:
 * |R * 2**sh - M * 10**f| < 10**f / 2 (a quarter below a power of two, where the gap below
 * is half). The nearest decimal with n significant digits, for n = 15, 16, 17 in turn, is the
 * answer the first time it reads back: when any decimal of at most 15 digits reads back as x
 * it is the nearest 15-digit one (such decimals are 10**-15 relative apart, x's gap 2**-52),
 * and with 16 or 17 digits the nearest is the one repr picks. Ties are left to dtoa. */
static int
fast_repr(double x, char *text)
{
    int n = 0;
    if (x == 0) {
        if (signbit(x))
            text[n++] = '-';
        memcpy(text + n, "0.0", 3);
        return n + 3;
    }
    double ax = fabs(x);
    if (!(ax >= 1e-4 && ax < 1e15))
        return 0;
    uint64_t bits;
    memcpy(&bits, &ax, 8);
    int exponent = (int)(bits >> 52);
    uint64_t m = (bits & ((UINT64_C(1) << 52) - 1)) | UINT64_C(1) << 52;
    int sh = 1075 - exponent; /* ax = m * 2**-sh, 0 < sh <= 66 in this range */
    if (sh <= 0)
        return 0;
    /* k = floor(log10(ax)), exactly: compare m * 10**j with 2**sh or m with 10**j * 2**sh. */
    int k;
    if (ax >= 1) {
        uint64_t whole = sh >= 64 ? 0 : m >> sh;
        char tmp[24];
        k = udigits(whole, tmp + sizeof tmp) - 1;
    }
    else {
        k = -1;
        while ((unsigned __int128)m * pow10_128(-k) < (unsigned __int128)1 << sh)
            k--;
    }
    unsigned __int128 half = (unsigned __int128)1 << (sh - 1);
    for (int digits = 15; digits <= 17; digits++) {
        int f = digits - 1 - k; /* fraction digits: 0 <= f <= 20 in this range */
        if (f < 0 || f > MAX_POW10)
            return 0;
        unsigned __int128 scale = pow10_128(f);
        unsigned __int128 a = (unsigned __int128)m * scale;
        unsigned __int128 rest = a & (((unsigned __int128)1 << sh) - 1);
        if (rest == half)
            return 0; /* halfway between two candidates */
        unsigned __int128 r = (a >> sh) + (rest > half);
        __int128 diff = (__int128)(r << sh) - (__int128)a;
        unsigned __int128 gap = (unsigned __int128)(diff < 0 ? -diff : diff);
        int below_power_of_two = m == UINT64_C(1) << 52 && diff < 0;
        unsigned __int128 bound = below_power_of_two ? 4 * gap : 2 * gap;
        if (bound == scale)
            return 0; /* exactly halfway to a neighbour: round-half-even decides */
        if (bound > scale)
            continue;
        /* r / 10**f: its digits, the point before the last f, fraction's trailing zeros cut. */
        char buf[48];
        char *end = buf + sizeof buf;
        int len = udigits((uint64_t)r, end); /* r < 10**17: 64 bits (no 128-bit division) */
        end -= len;
        while (len <= f) { /* a leading "0." */
            *--end = '0';
            len++;
        }
        int whole_len = len - f;
        int frac_len = f;
        while (frac_len > 0 && end[whole_len + frac_len - 1] == '0')
            frac_len--;
        if (signbit(x))
            text[n++] = '-';
        memcpy(text + n, end, whole_len);
        n += whole_len;
        text[n++] = '.';
        if (frac_len == 0)
            text[n++] = '0';
        else {
            memcpy(text + n, end + whole_len, frac_len);
            n += frac_len;
        }
        return n;
    }
    return 0;
}

/* Python's repr(d) for a finite double. */
static int
put_repr(out_t *o, double d)
{
    int n = fast_repr(d, o->buf + o->len);
    if (n > 0) {
        o->len += n;
        return 0;
    }
    char *s = PyOS_double_to_string(d, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
    if (s == NULL)
        return -1;
    put(o, s, (Py_ssize_t)strlen(s));
    PyMem_Free(s);
    return 0;
}

/* repr(x) as a str (for tests: the fast formatter against CPython's). */
static PyObject *
fast_repr_py(PyObject *Py_UNUSED(self), PyObject *arg)
{
    double x = PyFloat_AsDouble(arg);
    if (x == -1.0 && PyErr_Occurred())
        return NULL;
    char text[48];
    int n = fast_repr(x, text);
    if (n == 0)
        Py_RETURN_NONE;
    return PyUnicode_FromStringAndSize(text, n);
}

/* -- cells ---------------------------------------------------------------------------------- */

/* Decimal's plain text of v / 10**scale with no trailing fractional zeros, as
 * meanings.scaled_text gives it; 0 when that text is not plain (the row is declined). */
static int
scaled_text(int64_t v, int64_t scale, char *text)
{
    uint64_t m = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    uint64_t unit = 1;
    int big = 0; /* 10**scale beyond uint64: everything is fraction */
    for (int64_t k = 0; k < scale; k++) {
        if (unit > UINT64_MAX / 10) {
            big = 1;
            break;
        }
        unit *= 10;
    }
    uint64_t whole = big ? 0 : m / unit, fraction = big ? m : m % unit;
    char w[24], f[24];
    int wn = udigits(whole, w + sizeof w);
    char *wd = w + sizeof w - wn;
    int n = 0;
    if (v < 0)
        text[n++] = '-';
    if (fraction) {
        int fn = udigits(fraction, f + sizeof f);
        char *fd = f + sizeof f - fn;
        int64_t leading = scale - fn;
        if (!whole && leading > MAX_PLAIN_LEADING_ZEROS)
            return 0;
        while (fn > 0 && fd[fn - 1] == '0')
            fn--;
        if (n + wn + 1 + leading + fn > MAX_PLAIN_DECIMAL_LENGTH)
            return 0;
        memcpy(text + n, wd, wn);
        n += wn;
        text[n++] = '.';
        for (int64_t k = 0; k < leading; k++)
            text[n++] = '0';
        memcpy(text + n, fd, fn);
        n += fn;
    }
    else {
        if (n + wn > MAX_PLAIN_DECIMAL_LENGTH)
            return 0;
        memcpy(text + n, wd, wn);
        n += wn;
    }
    return n;
}

/* Python's str.isspace() for a code point at a text's ends (str.strip() removes these). */
static inline int
is_space(Py_UCS4 c)
{
    return Py_UNICODE_ISSPACE(c);
}

/* ASCII text that needs no escaping, trimming or truncating: its length, else -1. */
static Py_ssize_t
plain_bytes(const unsigned char *s, Py_ssize_t n)
{
    if (n > MAX_PLAIN_CHARS)
        return -1;
    for (Py_ssize_t k = 0; k < n; k++) {
        unsigned char b = s[k];
        /* Non-ASCII bytes need the column's code page; controls, markup and "_x" need escaping
         * (escape.NEEDS_WORK and its "_x" check). */
        if (b < 0x20 || b >= 0x80 || b == '<' || b == '>' || b == '&')
            return -1;
        if (b == '_' && k + 1 < n && s[k + 1] == 'x')
            return -1;
    }
    if (n && (s[0] == ' ' || s[n - 1] == ' '))
        return -1;
    return n;
}

/* Text written character by character: what the plain-text checks need to remember. */
typedef struct {
    Py_ssize_t start; /* where the text began in the output (to take it back) */
    Py_ssize_t chars;
    Py_UCS4 first, last;
} text_state;

/* One character of plain text, as UTF-8; -1 (the text is declined) for what needs escaping:
 * controls, markup, surrogates, U+FFFE/U+FFFF (escape.NEEDS_WORK) and the "_x" of an escape
 * lookalike. A surrogate has no UTF-8 (the Python encoder writes it as `_xD800_`): put_utf16
 * joins pairs before calling this, but a code page's byte table may hold a lone one. The
 * caller reserved 4 bytes. */
static inline int
put_char(out_t *o, text_state *t, Py_UCS4 c)
{
    if (c < 0x20 || c == '<' || c == '>' || c == '&' || (c >= 0xD800 && c <= 0xDFFF) ||
        c == 0xFFFE || c == 0xFFFF)
        return -1;
    if (c == 'x' && t->chars && t->last == '_')
        return -1;
    if (t->chars == 0)
        t->first = c;
    t->last = c;
    t->chars++;
    if (c < 0x80) {
        o->buf[o->len++] = (char)c;
    }
    else if (c < 0x800) {
        o->buf[o->len++] = (char)(0xC0 | c >> 6);
        o->buf[o->len++] = (char)(0x80 | (c & 0x3F));
    }
    else if (c < 0x10000) {
        o->buf[o->len++] = (char)(0xE0 | c >> 12);
        o->buf[o->len++] = (char)(0x80 | (c >> 6 & 0x3F));
        o->buf[o->len++] = (char)(0x80 | (c & 0x3F));
    }
    else {
        o->buf[o->len++] = (char)(0xF0 | c >> 18);
        o->buf[o->len++] = (char)(0x80 | (c >> 12 & 0x3F));
        o->buf[o->len++] = (char)(0x80 | (c >> 6 & 0x3F));
        o->buf[o->len++] = (char)(0x80 | (c & 0x3F));
    }
    return 0;
}

/* After the last character: 0 if the text was plain (not too long for the plain path, no
 * whitespace str.strip() would remove at its ends), else -1 with the text taken back. */
static int
end_text(out_t *o, const text_state *t)
{
    if (t->chars > MAX_PLAIN_CHARS || (t->chars && (is_space(t->first) || is_space(t->last)))) {
        o->len = t->start;
        return -1;
    }
    return 0;
}

/* UTF-16LE text that needs no escaping, trimming or truncating, written as UTF-8: 0, or -1
 * (nothing written) when the Python encoder must write it. */
static int
put_utf16(out_t *o, const unsigned char *s, Py_ssize_t n)
{
    if (n & 1)
        return -1;
    Py_ssize_t units = n / 2;
    text_state t = {o->len, 0, 0, 0};
    for (Py_ssize_t k = 0; k < units; k++) {
        Py_UCS4 c = (Py_UCS4)s[2 * k] | (Py_UCS4)s[2 * k + 1] << 8;
        if (c >= 0xD800 && c <= 0xDFFF) {
            /* A pair is one astral character; a lone surrogate needs an escape. */
            if (c > 0xDBFF || k + 1 >= units)
                goto declined;
            Py_UCS4 low = (Py_UCS4)s[2 * k + 2] | (Py_UCS4)s[2 * k + 3] << 8;
            if (low < 0xDC00 || low > 0xDFFF)
                goto declined;
            c = 0x10000 + ((c - 0xD800) << 10) + (low - 0xDC00);
            k++;
        }
        if (put_char(o, &t, c) < 0)
            goto declined;
    }
    return end_text(o, &t);
declined:
    o->len = t.start;
    return -1;
}

/* Bytes of a single-byte code page, each the character `table` gives it, as UTF-8 plain text:
 * 0, or -1 (nothing written) as put_utf16. */
static int
put_table_bytes(out_t *o, const unsigned char *s, Py_ssize_t n, const Py_UCS4 *table)
{
    text_state t = {o->len, 0, 0, 0};
    for (Py_ssize_t k = 0; k < n; k++) {
        if (put_char(o, &t, table[s[k]]) < 0) {
            o->len = t.start;
            return -1;
        }
    }
    return end_text(o, &t);
}

/* Floor division of a by b > 0 (Python's //). */
static inline __int128
floor_div(__int128 a, __int128 b)
{
    __int128 q = a / b;
    if ((a % b != 0) && (a < 0))
        q--;
    return q;
}

/* The cell of column i (c) holding `cell`, after its row number: 0, 1 = declined, -1 = error
 * (ValueError for a text cell that points outside the data: cells that do not come from a
 * scan of this data). */
static int
put_cell(out_t *o, const column_t *c, Py_ssize_t i, const unsigned char *cell, const char *rs,
         int rn, const unsigned char *data, Py_ssize_t data_len)
{
    int64_t v;
    int32_t length;
    memcpy(&v, cell, 8);
    memcpy(&length, cell + 8, 4);
    if (length < 0)
        return 0; /* NULL: no cell */
    /* Room for the markup and any number: texts reserve their own bytes below. */
    if (reserve(o, c->open.n + rn + c->mid.n + c->close.n + c->alt_mid.n + c->alt_close.n + 64) < 0)
        return -1;
    Py_ssize_t start = o->len;
    put_text(o, c->open);
    put(o, rs, rn);
    switch (c->op) {
    case OP_INT:
        if (v < -MAX_EXACT_INT || v > MAX_EXACT_INT) {
            put_text(o, c->alt_mid);
            put_int(o, v);
            put_text(o, c->alt_close);
            return 0;
        }
        put_text(o, c->mid);
        put_int(o, v);
        break;
    case OP_FLOAT: {
        double d;
        memcpy(&d, &v, 8);
        if (!isfinite(d))
            goto declined;
        put_text(o, c->mid);
        if (put_repr(o, d) < 0)
            return -1;
        break;
    }
    case OP_BOOL:
        put_text(o, c->mid);
        o->buf[o->len++] = v ? '1' : '0';
        break;
    case OP_SCALED_FLOAT: {
        int64_t unit = c->p[0];
        if (v < -MAX_EXACT_INT || v > MAX_EXACT_INT)
            goto declined;
        put_text(o, c->mid);
        if (v % unit) {
            if (put_repr(o, (double)v / (double)unit) < 0)
                return -1;
        }
        else {
            /* A whole value: its digits, while they are the Decimal's plain text. */
            if (!(c->p[1] < v && v < c->p[2]))
                goto declined;
            put_int(o, v / unit);
        }
        break;
    }
    case OP_SCALED_TEXT: {
        char text[MAX_PLAIN_DECIMAL_LENGTH + 8];
        int n = scaled_text(v, c->p[0], text);
        if (n == 0)
            goto declined;
        put_text(o, c->mid);
        put(o, text, n);
        break;
    }
    case OP_DAYS: {
        /* v + offset, declined where it would overflow (an offset is a few hundred thousand
         * days; a day count past int64's range is no date). */
        int64_t offset = c->p[0];
        if ((offset > 0 && v > INT64_MAX - offset) || (offset < 0 && v < INT64_MIN - offset))
            goto declined;
        int64_t serial = v + offset;
        if (serial < c->p[1] || serial > c->p[2])
            goto declined;
        put_text(o, c->mid);
        put_int(o, serial);
        break;
    }
    case OP_TICKS: {
        /* ((v + origin) * mul) // div, in 128 bits: no tick count can overflow it. */
        __int128 x = floor_div(((__int128)v + c->p[0]) * c->p[1], c->p[2]);
        if (x < c->p[3] || x >= c->p[4])
            goto declined;
        put_text(o, c->mid);
        /* Both below 2**53 (the plan checks the bounds): exact doubles, one rounding. */
        if (put_repr(o, (double)(int64_t)x / (double)c->p[5]) < 0)
            return -1;
        break;
    }
    case OP_BYTE_TEXT:
    case OP_UTF16_TEXT: {
        if (v < 0 || v > data_len || length > data_len - v) {
            PyErr_Format(PyExc_ValueError,
                         "cells: column %zd's text (%ld bytes at %lld) is outside the data (%zd "
                         "bytes)",
                         i, (long)length, (long long)v, data_len);
            return -1;
        }
        const unsigned char *s = data + v;
        put_text(o, c->mid);
        if (c->op == OP_BYTE_TEXT) {
            /* A byte is one character: at most 4 bytes of UTF-8. */
            if (reserve(o, (Py_ssize_t)length * 4 + c->close.n) < 0)
                return -1;
            if (plain_bytes(s, length) >= 0)
                put(o, (const char *)s, length); /* ASCII: the bytes are the text */
            else if (c->table == NULL || put_table_bytes(o, s, length, c->table) < 0)
                goto declined;
        }
        else {
            /* A UTF-8 character takes at most 3 bytes per UTF-16 unit (4 per pair). */
            if (reserve(o, (Py_ssize_t)length / 2 * 3 + c->close.n) < 0)
                return -1;
            if (put_utf16(o, s, length) < 0)
                goto declined;
        }
        break;
    }
    default: /* plan() admits no other op */
        PyErr_SetString(PyExc_SystemError, "xlsx._rowxml: unknown op in plan");
        return -1;
    }
    put_text(o, c->close);
    return 0;
declined:
    o->len = start;
    return 1;
}

/* -- Python API ----------------------------------------------------------------------------- */

static void
free_columns(column_t *columns, Py_ssize_t width)
{
    if (columns == NULL)
        return;
    for (Py_ssize_t i = 0; i < width; i++)
        PyMem_Free(columns[i].table); /* PyUnicode_AsUCS4Copy allocates with PyMem */
    PyMem_Free(columns);
}

static void
plan_free(PyObject *capsule)
{
    plan_t *plan = PyCapsule_GetPointer(capsule, CAPSULE_NAME);
    if (plan == NULL)
        return;
    Py_XDECREF(plan->strings);
    free_columns(plan->columns, plan->width);
    PyMem_Free(plan);
}

static int
get_text(PyObject *item, text_t *t)
{
    if (!PyBytes_Check(item)) {
        PyErr_SetString(PyExc_TypeError, "plan texts must be bytes");
        return -1;
    }
    t->s = PyBytes_AS_STRING(item);
    t->n = PyBytes_GET_SIZE(item);
    return 0;
}

PyDoc_STRVAR(plan_doc,
"plan(columns) -> plan\n\n"
"Compile per-column tuples (op, open, mid, close, alt_mid, alt_close, p0..p5, byte table)\n"
"built by xlsx/native.py into a plan for encode().");

static PyObject *
make_plan(PyObject *Py_UNUSED(self), PyObject *arg)
{
    PyObject *seq = PySequence_Tuple(arg);
    if (seq == NULL)
        return NULL;
    Py_ssize_t width = PyTuple_GET_SIZE(seq);
    if (width == 0) {
        Py_DECREF(seq);
        PyErr_SetString(PyExc_ValueError, "a plan needs at least one column");
        return NULL;
    }
    plan_t *plan = PyMem_Calloc(1, sizeof *plan);
    column_t *columns = PyMem_Calloc(width, sizeof *columns);
    if (plan == NULL || columns == NULL) {
        PyMem_Free(plan);
        PyMem_Free(columns);
        Py_DECREF(seq);
        return PyErr_NoMemory();
    }
    plan->width = width;
    plan->columns = columns;
    plan->strings = seq; /* the texts point into these bytes objects */
    for (Py_ssize_t i = 0; i < width; i++) {
        PyObject *t = PyTuple_GET_ITEM(seq, i);
        if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) != 13) {
            PyErr_SetString(PyExc_TypeError, "each column is a tuple of 13 items");
            goto fail;
        }
        column_t *c = &columns[i];
        /* The op as a long first: a cast to int would take 2**32 + 1 for op 1. */
        long op = PyLong_AsLong(PyTuple_GET_ITEM(t, 0));
        if (op == -1 && PyErr_Occurred())
            goto fail;
        if (op < OP_INT || op > OP_LAST) {
            PyErr_Format(PyExc_ValueError, "column %zd: unknown op %ld", i, op);
            goto fail;
        }
        c->op = (int)op;
        if (get_text(PyTuple_GET_ITEM(t, 1), &c->open) < 0 ||
            get_text(PyTuple_GET_ITEM(t, 2), &c->mid) < 0 ||
            get_text(PyTuple_GET_ITEM(t, 3), &c->close) < 0 ||
            get_text(PyTuple_GET_ITEM(t, 4), &c->alt_mid) < 0 ||
            get_text(PyTuple_GET_ITEM(t, 5), &c->alt_close) < 0)
            goto fail;
        for (int k = 0; k < 6; k++) {
            c->p[k] = PyLong_AsLongLong(PyTuple_GET_ITEM(t, 6 + k));
            if (c->p[k] == -1 && PyErr_Occurred())
                goto fail;
        }
        PyObject *table = PyTuple_GET_ITEM(t, 12);
        if (table != Py_None) {
            if (c->op != OP_BYTE_TEXT || !PyUnicode_Check(table) ||
                PyUnicode_GET_LENGTH(table) != 256) {
                PyErr_SetString(PyExc_ValueError,
                                "a byte table is a str of 256 characters, for byte text only");
                goto fail;
            }
            c->table = PyUnicode_AsUCS4Copy(table);
            if (c->table == NULL)
                goto fail;
            /* Text of ASCII bytes is written as its bytes, without the table. */
            for (Py_UCS4 b = 0; b < 0x80; b++) {
                if (c->table[b] != b) {
                    PyErr_Format(PyExc_ValueError,
                                 "column %zd: a byte table keeps the ASCII bytes as they are "
                                 "(byte %u is code point %u)",
                                 i, (unsigned)b, (unsigned)c->table[b]);
                    goto fail;
                }
            }
        }
        if ((c->op == OP_SCALED_FLOAT && c->p[0] <= 0) || (c->op == OP_TICKS && (c->p[2] <= 0 || c->p[5] <= 0))) {
            PyErr_SetString(PyExc_ValueError, "a divisor in the plan is not positive");
            goto fail;
        }
        /* (v + origin) * multiplier stays below 2**126 for any int64 v: no 128-bit overflow. */
        if (c->op == OP_TICKS &&
            (c->p[0] < -PARAM_LIMIT || c->p[0] > PARAM_LIMIT || c->p[1] <= 0 || c->p[1] > PARAM_LIMIT)) {
            PyErr_SetString(PyExc_ValueError, "a tick count's origin or multiplier is out of range");
            goto fail;
        }
        if (c->op == OP_SCALED_TEXT && (c->p[0] < 0 || c->p[0] > MAX_DECIMAL_SCALE)) {
            PyErr_SetString(PyExc_ValueError, "a decimal's scale is out of range");
            goto fail;
        }
    }
    PyObject *capsule = PyCapsule_New(plan, CAPSULE_NAME, plan_free);
    if (capsule == NULL)
        goto fail;
    return capsule;
fail:
    Py_DECREF(seq);
    free_columns(columns, width);
    PyMem_Free(plan);
    return NULL;
}

PyDoc_STRVAR(encode_doc,
"encode(plan, data, cells, rows, first_row, room) -> (xml, done, stop)\n\n"
"The <row> elements of the first `rows` rows of `cells`, numbered from `first_row`, as UTF-8.\n"
"Stops before a row that would bring the bytes beyond `room` (stop 1) or that holds a value\n"
"the Python encoder must write (stop 2); `done` rows were written. ValueError for a\n"
"first_row below 1 or a last row number past 2**63 - 1, and for a text cell that points\n"
"outside `data`.");

static PyObject *
encode(PyObject *Py_UNUSED(self), PyObject *args)
{
    PyObject *capsule;
    Py_buffer data, cells;
    Py_ssize_t rows, room;
    long long first_row;
    if (!PyArg_ParseTuple(args, "Oy*y*nLn", &capsule, &data, &cells, &rows, &first_row, &room))
        return NULL;
    PyObject *result = NULL;
    out_t o = {NULL, 0, 0};
    plan_t *plan = PyCapsule_GetPointer(capsule, CAPSULE_NAME);
    if (plan == NULL)
        goto done;
    Py_ssize_t width = plan->width, row_bytes = width * CELL_BYTES;
    if (rows < 0 || rows > cells.len / row_bytes) {
        PyErr_SetString(PyExc_ValueError, "cells hold fewer rows than asked for");
        goto done;
    }
    /* Row numbers start at 1, and the last one, first_row + rows - 1, must fit. */
    if (first_row < 1 || first_row - 1 > LLONG_MAX - rows) {
        PyErr_Format(PyExc_ValueError, "first_row %lld: rows are numbered from 1 to 2**63 - 1",
                     first_row);
        goto done;
    }
    Py_ssize_t k = 0;
    int stop = STOP_DONE;
    const unsigned char *cell = cells.buf;
    for (; k < rows; k++, cell += row_bytes) {
        char rsbuf[24];
        long long number = first_row + k;
        int rn = udigits((uint64_t)number, rsbuf + sizeof rsbuf);
        const char *rs = rsbuf + sizeof rsbuf - rn;
        Py_ssize_t start = o.len;
        if (reserve(&o, 24 + 2 * rn) < 0)
            goto done;
        put(&o, "<row r=\"", 8);
        put(&o, rs, rn);
        put(&o, "\">", 2);
        int declined = 0;
        for (Py_ssize_t i = 0; i < width; i++) {
            int r = put_cell(&o, &plan->columns[i], i, cell + i * CELL_BYTES, rs, rn, data.buf,
                             data.len);
            if (r < 0)
                goto done;
            if (r > 0) {
                declined = 1;
                break;
            }
        }
        if (declined) {
            o.len = start;
            stop = STOP_DECLINED;
            break;
        }
        if (reserve(&o, 6) < 0)
            goto done;
        put(&o, "</row>", 6);
        if (o.len > room) {
            o.len = start;
            stop = STOP_ROOM;
            break;
        }
    }
    PyObject *xml = PyBytes_FromStringAndSize(o.buf ? o.buf : "", o.len);
    if (xml == NULL)
        goto done;
    result = Py_BuildValue("Nni", xml, k, stop);
done:
    PyMem_Free(o.buf);
    PyBuffer_Release(&data);
    PyBuffer_Release(&cells);
    return result;
}

static PyMethodDef methods[] = {
    {"plan", make_plan, METH_O, plan_doc},
    {"encode", encode, METH_VARARGS, encode_doc},
    {"fast_repr", fast_repr_py, METH_O,
     "fast_repr(x) -> repr(x) through the integer formatter, or None where dtoa decides."},
    {NULL, NULL, 0, NULL},
};

/* The numbers this file shares with Python, as module constants: the Python definitions
 * (primitive_cells, xlsx/native.py's _Op) are the ones Python code uses, also without this
 * module, and tests/test_xlsx/test_native_rows.py holds these equal to them. */
static const struct {
    const char *name;
    long value;
} constants[] = {
    {"STOP_DONE", STOP_DONE},
    {"STOP_ROOM", STOP_ROOM},
    {"STOP_DECLINED", STOP_DECLINED},
    {"CELL_BYTES", CELL_BYTES},
    {"OP_INT", OP_INT},
    {"OP_FLOAT", OP_FLOAT},
    {"OP_BOOL", OP_BOOL},
    {"OP_SCALED_FLOAT", OP_SCALED_FLOAT},
    {"OP_SCALED_TEXT", OP_SCALED_TEXT},
    {"OP_DAYS", OP_DAYS},
    {"OP_TICKS", OP_TICKS},
    {"OP_BYTE_TEXT", OP_BYTE_TEXT},
    {"OP_UTF16_TEXT", OP_UTF16_TEXT},
};

static int
exec_module(PyObject *module)
{
    for (size_t k = 0; k < sizeof constants / sizeof constants[0]; k++) {
        if (PyModule_AddIntConstant(module, constants[k].name, constants[k].value) < 0)
            return -1;
    }
    return 0;
}

/* Multi-phase initialisation, as tdsrows._rowscan: no module state and no static Python
 * object (POW10 is constant), so any interpreter, with its own GIL too, may load it. The GIL
 * stays on in a free-threaded build: the functions were not reviewed for calls without it. */
static PyModuleDef_Slot slots[] = {
    {Py_mod_exec, exec_module},
#ifdef Py_mod_multiple_interpreters
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
#ifdef Py_mod_gil
    {Py_mod_gil, Py_MOD_GIL_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "xlsx._rowxml",
    .m_doc = "Worksheet <row> elements from rows of typed primitive cells (see xlsx/native.py).",
    .m_size = 0,
    .m_methods = methods,
    .m_slots = slots,
};

PyMODINIT_FUNC
PyInit__rowxml(void)
{
    return PyModuleDef_Init(&module_def);
}
