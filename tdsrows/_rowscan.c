/* ROW and NBCROW tokens to typed primitive cells, compiled.
 *
 * The generated Python decoder (tdsrows/codegen.py) builds a tuple of Python objects per row;
 * the export only needs each value's primitive (an integer, a double, a bool, or where its
 * text bytes are), so this module walks the tokens of a packet and writes those primitives
 * into a flat buffer of 16-byte cells that the C worksheet encoder reads without creating a
 * single object. The program that says how each column is read, the cell layout and the stop
 * codes are described in tdsrows/scan.py, which builds the program from the column layout.
 *
 * Wire formats: ROW (MS-TDS 2.2.7.19), NBCROW (2.2.7.17), value framings (2.2.5.2), fixed and
 * variable-length data (2.2.5.5). Every read is bounds-checked: a packet can end anywhere, and
 * a row cut off by the end of the data is reported as INCOMPLETE, never decoded. A row holding
 * something a cell cannot represent is reported as SLOW (the caller decodes that one row in
 * Python), but only once the row is known to be complete, so SLOW always names a whole row.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

#define ROW_TOKEN 0xD1    /* MS-TDS 2.2.7.19 */
#define NBCROW_TOKEN 0xD2 /* MS-TDS 2.2.7.17 */
#define NULL_USHORT_LEN 0xFFFF /* CHARBIN_NULL of a USHORTLEN_TYPE (MS-TDS 2.2.5.5.3) */

/* Stop codes besides a token byte (>= 0); tdsrows/scan.py and tdsrows/codegen.py name them. */
#define STOP_INCOMPLETE (-1)
#define STOP_FULL (-2)
#define STOP_SLOW (-3)

#define CELL_BYTES 16
#define START_BYTES 8
#define PROGRAM_BYTES 4 /* per column: op, framing, size, scale */
#define MAX_TIME_SCALE 7
/* Below this day number a datetime2 of any scale fits an int64 (10**7 days at 864 * 10**9
 * ticks a day, plus at most 2**40 ticks, is below 2**63), so the exact check is skipped. */
#define DATETIME2_SAFE_DAYS 10000000

/* Framing values of tdsrows.layout.Framing. */
enum framing { FIXED = 0, BYTE_LEN = 1, USHORT_LEN = 2 };

/* How a present value's bytes become a cell; the values of scan.py's _Op. */
enum op {
    OP_UINT8 = 1,     /* tinyint: unsigned */
    OP_INT16 = 2,     /* smallint */
    OP_INT32 = 3,     /* int, smallmoney */
    OP_INT64 = 4,     /* bigint */
    OP_MONEY8 = 5,    /* money: high int32 then low uint32 (MS-TDS 2.2.5.5.1.4) */
    OP_DECIMAL = 6,   /* sign byte, then a 4/8/12/16-byte magnitude (MS-TDS 2.2.5.5.1.6) */
    OP_DATE = 7,      /* 3 bytes of days since 0001-01-01 (MS-TDS 2.2.5.5.1.8) */
    OP_DATETIME2 = 8, /* time(s) ticks, then 3 bytes of days (MS-TDS 2.2.5.5.1.8) */
    OP_FLOAT32 = 9,   /* real */
    OP_FLOAT64 = 10,  /* float */
    OP_BIT = 11,
    OP_TEXT = 12,     /* varchar or nvarchar: where the bytes are, not decoded */
    OP_LAST = OP_TEXT
};

/* Bytes of time(s) by scale (MS-TDS 2.2.5.5.1.8), as tdsrows.layout.TIME_BYTES. */
static const unsigned char time_bytes[MAX_TIME_SCALE + 1] = {3, 3, 3, 4, 4, 5, 5, 5};

/* Ticks of 10**-s second in a day, by scale s. */
static const int64_t ticks_per_day[MAX_TIME_SCALE + 1] = {
    86400LL,          864000LL,          8640000LL,          86400000LL,
    864000000LL,      8640000000LL,      86400000000LL,      864000000000LL,
};

/* The cell, as the worksheet encoder and scan.py read it (native byte order). */
typedef struct {
    int64_t value;    /* the integer, the double's bits, 0/1, or the text's offset in data */
    int32_t length;   /* -1 NULL, 0 a number or bool, else the text's bytes */
    int32_t reserved; /* 0 */
} cell_t;

/* C99 has no static_assert: a negative array size fails the build instead. */
typedef char cell_is_16_bytes[sizeof(cell_t) == CELL_BYTES ? 1 : -1];

/* Little-endian loads, byte by byte: correct on any host and at any alignment (GCC and Clang
 * turn each into a single load on little-endian machines). */
static inline uint32_t
le16(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8;
}

static inline uint32_t
le24(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16;
}

static inline uint32_t
le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t
le64(const unsigned char *p)
{
    return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

static inline void
put_cell(unsigned char *cell, int64_t value, int32_t length)
{
    cell_t c;
    c.value = value;
    c.length = length;
    c.reserved = 0;
    /* memcpy: a writable buffer handed in from Python need not be 8-byte aligned. */
    memcpy(cell, &c, sizeof c);
}

static inline int64_t
double_bits(double x)
{
    int64_t bits;
    memcpy(&bits, &x, sizeof bits);
    return bits;
}

/* The scaled integer of a decimal whose magnitude is `size` bytes at `v` (sign byte before it),
 * into *out; 0 when an int64 cannot hold it: a magnitude above 2**63 - 1, or a negative zero
 * (pytds gives Decimal('-0'), which has no integer form). As pytds does, any sign byte other
 * than 0 means positive. */
static inline int
decimal_value(const unsigned char *v, size_t size, int64_t *out)
{
    uint64_t magnitude;
    switch (size) {
    case 5:
        magnitude = le32(v + 1);
        break;
    case 9:
        magnitude = le64(v + 1);
        break;
    case 13:
        if (le32(v + 9) != 0)
            return 0;
        magnitude = le64(v + 1);
        break;
    default: /* 17: the program check admits no other size */
        if (le64(v + 9) != 0)
            return 0;
        magnitude = le64(v + 1);
        break;
    }
    if (magnitude > (uint64_t)INT64_MAX)
        return 0;
    if (v[0] != 0) {
        *out = (int64_t)magnitude;
        return 1;
    }
    if (magnitude == 0)
        return 0;
    *out = -(int64_t)magnitude;
    return 1;
}

/* Ticks of 10**-scale second since 0001-01-01 of a datetime2 of `size` bytes at `v` (the time
 * part first), into *out; 0 when an int64 cannot hold it. Valid dates (up to 9999-12-31) always
 * fit; only scale 7 with a day number past 10.6 million (never sent by SQL Server) overflows. */
static inline int
datetime2_value(const unsigned char *v, size_t size, unsigned scale, int64_t *out)
{
    size_t time_size = size - 3;
    int64_t ticks;
    if (time_size == 3)
        ticks = le24(v);
    else if (time_size == 4)
        ticks = le32(v);
    else
        ticks = (int64_t)le32(v) | (int64_t)v[4] << 32;
    int64_t days = le24(v + time_size);
    int64_t per_day = ticks_per_day[scale];
    if (days >= DATETIME2_SAFE_DAYS && days > (INT64_MAX - ticks) / per_day)
        return 0;
    *out = days * per_day + ticks;
    return 1;
}

/* Checks the program: raises ValueError and returns 0 if it is not one scan.py builds. */
static int
check_program(const unsigned char *program, Py_ssize_t width)
{
    for (Py_ssize_t i = 0; i < width; i++) {
        const unsigned char *c = program + i * PROGRAM_BYTES;
        unsigned op = c[0], framing = c[1], size = c[2], scale = c[3];
        int ok;
        if (op == OP_TEXT) {
            ok = framing == USHORT_LEN && size == 0 && scale == 0;
        }
        else if (framing != FIXED && framing != BYTE_LEN) {
            ok = 0;
        }
        else if (op == OP_DATETIME2) {
            ok = scale <= MAX_TIME_SCALE && size == 3u + time_bytes[scale];
        }
        else {
            unsigned expected;
            switch (op) {
            case OP_UINT8:
            case OP_BIT:
                expected = 1;
                break;
            case OP_INT16:
                expected = 2;
                break;
            case OP_DATE:
                expected = 3;
                break;
            case OP_INT32:
            case OP_FLOAT32:
                expected = 4;
                break;
            case OP_INT64:
            case OP_MONEY8:
            case OP_FLOAT64:
                expected = 8;
                break;
            case OP_DECIMAL:
                expected = (size == 5 || size == 9 || size == 13 || size == 17) ? size : 0;
                break;
            default:
                expected = 0;
                break;
            }
            ok = expected != 0 && size == expected && scale == 0;
        }
        if (!ok) {
            PyErr_Format(PyExc_ValueError,
                         "program: column %zd is not a valid (op %u, framing %u, size %u, "
                         "scale %u)",
                         i, op, framing, size, scale);
            return 0;
        }
    }
    return 1;
}

/* The scan itself, on checked arguments: rows from *pos on, at most `limit`. Returns the stop
 * code, with *pos the position after the last row written and *rows_out the rows written. */
static int
scan_rows(const unsigned char *data, size_t n, size_t *pos, const unsigned char *program,
          Py_ssize_t width, unsigned char *cells, unsigned char *starts, Py_ssize_t limit,
          Py_ssize_t *rows_out)
{
    size_t bitmap_bytes = ((size_t)width + 7) / 8;
    size_t row_stride = (size_t)width * CELL_BYTES;
    size_t p = *pos;
    Py_ssize_t rows = 0;
    int stop;

    for (;;) {
        /* FULL is decided before a row is looked at: the caller empties the cells and calls
         * again from *pos, whatever is there. */
        if (rows >= limit) {
            stop = STOP_FULL;
            break;
        }
        if (p >= n) {
            stop = STOP_INCOMPLETE;
            break;
        }
        const unsigned char *nulls = NULL;
        size_t q = p + 1;
        if (data[p] == NBCROW_TOKEN) {
            if (n - q < bitmap_bytes) {
                stop = STOP_INCOMPLETE;
                break;
            }
            nulls = data + q;
            q += bitmap_bytes;
        }
        else if (data[p] != ROW_TOKEN) {
            stop = data[p];
            break;
        }
        unsigned char *cell = cells + (size_t)rows * row_stride;
        /* Set once a value has no cell: the rest of the row is only walked (not decoded), so
         * that a cut-off row is still INCOMPLETE rather than SLOW. */
        int slow = 0;
        int cut = 0;
        for (Py_ssize_t i = 0; i < width; i++, cell += CELL_BYTES) {
            /* NBCROW: a NULL column has no bytes at all, whatever its framing. */
            if (nulls != NULL && (nulls[i >> 3] >> (i & 7) & 1)) {
                put_cell(cell, 0, -1);
                continue;
            }
            const unsigned char *c = program + i * PROGRAM_BYTES;
            unsigned framing = c[1];
            size_t size;
            if (framing == USHORT_LEN) {
                if (n - q < 2) {
                    cut = 1;
                    break;
                }
                size = le16(data + q);
                q += 2;
                if (size == NULL_USHORT_LEN) {
                    put_cell(cell, 0, -1);
                    continue;
                }
                /* Not checked against the declared size: the bytes are reported as they are. */
                if (n - q < size) {
                    cut = 1;
                    break;
                }
                put_cell(cell, (int64_t)q, (int32_t)size);
                q += size;
                continue;
            }
            size = c[2];
            if (framing == BYTE_LEN) {
                if (q >= n) {
                    cut = 1;
                    break;
                }
                size_t length = data[q++];
                if (length == 0) {
                    put_cell(cell, 0, -1);
                    continue;
                }
                if (length != size) {
                    /* Legal TDS (an INTN(8) column may send 4 bytes) but not what the program
                     * reads: the Python decoder reads this row. */
                    slow = 1;
                    size = length;
                }
            }
            if (n - q < size) {
                cut = 1;
                break;
            }
            const unsigned char *v = data + q;
            q += size;
            if (slow)
                continue;
            int64_t value;
            switch (c[0]) {
            case OP_UINT8:
                value = v[0];
                break;
            case OP_INT16:
                value = (int16_t)le16(v);
                break;
            case OP_INT32:
                value = (int32_t)le32(v);
                break;
            case OP_INT64:
                value = (int64_t)le64(v);
                break;
            case OP_MONEY8:
                /* |high| <= 2**31, so high * 2**32 + low always fits an int64. */
                value = (int64_t)(int32_t)le32(v) * 4294967296LL + (int64_t)le32(v + 4);
                break;
            case OP_DECIMAL:
                if (!decimal_value(v, size, &value)) {
                    slow = 1;
                    continue;
                }
                break;
            case OP_DATE:
                value = le24(v);
                break;
            case OP_DATETIME2:
                if (!datetime2_value(v, size, c[3], &value)) {
                    slow = 1;
                    continue;
                }
                break;
            case OP_FLOAT32: {
                uint32_t bits = le32(v);
                float f;
                memcpy(&f, &bits, sizeof f);
                /* Widened as CPython's struct 'f' does (a C float-to-double conversion). */
                value = double_bits((double)f);
                break;
            }
            case OP_FLOAT64:
                value = (int64_t)le64(v);
                break;
            default: /* OP_BIT: the program check admits no other op */
                value = v[0] != 0;
                break;
            }
            put_cell(cell, value, 0);
        }
        if (cut) {
            stop = STOP_INCOMPLETE;
            break;
        }
        if (slow) {
            stop = STOP_SLOW;
            break;
        }
        int64_t start = (int64_t)p;
        memcpy(starts + (size_t)rows * START_BYTES, &start, sizeof start);
        rows++;
        p = q;
    }
    *pos = p;
    *rows_out = rows;
    return stop;
}

/* A writable buffer, or TypeError (not BufferError) for a read-only one such as bytes. */
static int
get_writable(PyObject *obj, Py_buffer *view, const char *name)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_WRITABLE) == 0)
        return 1;
    if (PyErr_ExceptionMatches(PyExc_BufferError)) {
        PyErr_Format(PyExc_TypeError, "%s must be a writable buffer, not %.100s", name,
                     Py_TYPE(obj)->tp_name);
    }
    return 0;
}

PyDoc_STRVAR(scan_doc,
"scan(data, pos, program, cells, starts, max_rows) -> (pos_after, stop, rows)\n\n"
"Decode the ROW/NBCROW tokens from data[pos:] into cells (see tdsrows/scan.py).");

static PyObject *
scan(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 6) {
        PyErr_Format(PyExc_TypeError, "scan() takes 6 arguments (%zd given)", nargs);
        return NULL;
    }
    Py_buffer data = {0}, program = {0}, cells = {0}, starts = {0};
    PyObject *result = NULL;

    Py_ssize_t pos = PyLong_AsSsize_t(args[1]);
    if (pos == -1 && PyErr_Occurred())
        return NULL;
    Py_ssize_t max_rows = PyLong_AsSsize_t(args[5]);
    if (max_rows == -1 && PyErr_Occurred())
        return NULL;
    if (PyObject_GetBuffer(args[0], &data, PyBUF_SIMPLE) < 0)
        goto done;
    if (PyObject_GetBuffer(args[2], &program, PyBUF_SIMPLE) < 0)
        goto done;
    if (!get_writable(args[3], &cells, "cells"))
        goto done;
    if (!get_writable(args[4], &starts, "starts"))
        goto done;

    if (program.len == 0 || program.len % PROGRAM_BYTES != 0) {
        PyErr_Format(PyExc_ValueError,
                     "program: %d bytes per column expected, got %zd bytes", PROGRAM_BYTES,
                     program.len);
        goto done;
    }
    Py_ssize_t width = program.len / PROGRAM_BYTES;
    if (!check_program(program.buf, width))
        goto done;
    if (pos < 0 || pos > data.len) {
        PyErr_Format(PyExc_ValueError, "pos %zd is outside the data (%zd bytes)", pos, data.len);
        goto done;
    }
    if (max_rows < 0) {
        PyErr_Format(PyExc_ValueError, "max_rows must not be negative, got %zd", max_rows);
        goto done;
    }

    Py_ssize_t limit = max_rows;
    Py_ssize_t cell_rows = cells.len / CELL_BYTES / width;
    Py_ssize_t start_rows = starts.len / START_BYTES;
    if (cell_rows < limit)
        limit = cell_rows;
    if (start_rows < limit)
        limit = start_rows;

    size_t after = (size_t)pos;
    Py_ssize_t rows = 0;
    int stop = scan_rows(data.buf, (size_t)data.len, &after, program.buf, width, cells.buf,
                         starts.buf, limit, &rows);

    PyObject *items[3] = {PyLong_FromSsize_t((Py_ssize_t)after), PyLong_FromLong(stop),
                          PyLong_FromSsize_t(rows)};
    if (items[0] != NULL && items[1] != NULL && items[2] != NULL)
        result = PyTuple_New(3);
    if (result != NULL) {
        for (int k = 0; k < 3; k++)
            PyTuple_SET_ITEM(result, k, items[k]); /* steals the reference */
    }
    else {
        for (int k = 0; k < 3; k++)
            Py_XDECREF(items[k]);
    }

done:
    /* PyBuffer_Release is a no-op on a view never filled (obj NULL). */
    PyBuffer_Release(&data);
    PyBuffer_Release(&program);
    PyBuffer_Release(&cells);
    PyBuffer_Release(&starts);
    return result;
}

static PyMethodDef methods[] = {
    {"scan", (PyCFunction)(void (*)(void))scan, METH_FASTCALL, scan_doc},
    {NULL, NULL, 0, NULL},
};

/* No module state: multi-phase initialisation with no slots of its own, so the module can be
 * loaded in subinterpreters too. */
static PyModuleDef_Slot slots[] = {
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "tdsrows._rowscan",
    .m_doc = "ROW/NBCROW tokens to typed primitive cells (see tdsrows/scan.py).",
    .m_size = 0,
    .m_methods = methods,
    .m_slots = slots,
};

PyMODINIT_FUNC
PyInit__rowscan(void)
{
    return PyModuleDef_Init(&module_def);
}
