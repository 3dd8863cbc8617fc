/* ROW and NBCROW tokens to typed primitive cells, compiled.
 *
 * The generated Python decoder (tdsrows/codegen.py) builds a tuple of Python objects per row;
 * the export only needs each value's primitive (an integer, a double, a bool, or where its
 * text bytes are), so this module walks the tokens of a packet and writes those primitives
 * into a flat buffer of 16-byte cells that the C worksheet encoder reads without creating a
 * single object. The program that says how each column is read is described in
 * tdsrows/scan.py, which builds it from the column layout; the cell layout in primitive_cells,
 * the stop codes in tdsrows/stops.py.
 *
 * Wire formats: ROW (MS-TDS 2.2.7.19), NBCROW (2.2.7.17), value framings (2.2.5.2), fixed and
 * variable-length data (2.2.5.5). Every read is bounds-checked: a packet can end anywhere, and
 * a row cut off by the end of the data is reported as INCOMPLETE, never decoded. A row holding
 * something a cell cannot represent is reported as SLOW (the caller decodes that one row in
 * Python), but only once the row is known to be complete, so SLOW always names a whole row.
 * A row holding a value that its column's type does not have (a length other than the type's,
 * text longer than declared or of an odd number of UTF-16 bytes, a time of a day or more) is
 * reported as MALFORMED as soon as the value is seen, cut off or not: the caller has the
 * Python decoder name the column and the problem (tdsrows.layout.Column.length_problem).
 *
 * tuples() turns scanned cells back into the rows pytds gives (tuples of int, float, bool,
 * str, datetime.date, datetime.datetime, decimal.Decimal, None), building each object from its
 * cell with no Python code in between except for what CPython only offers in Python: decimal
 * construction and the code-page decoders (called per value through the plan's helpers).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>

#include <stdint.h>
#include <string.h>

#define ROW_TOKEN 0xD1    /* MS-TDS 2.2.7.19 */
#define NBCROW_TOKEN 0xD2 /* MS-TDS 2.2.7.17 */
#define NULL_USHORT_LEN 0xFFFF /* CHARBIN_NULL of a USHORTLEN_TYPE (MS-TDS 2.2.5.5.3) */

/* Stop codes besides a token byte (>= 0): tdsrows/stops.py's values, exported below. */
#define STOP_INCOMPLETE (-1)
#define STOP_FULL (-2)
#define STOP_SLOW (-3)
#define STOP_MALFORMED (-4)
/* DATETIME and SMALLDATETIME cells: milliseconds since 1900-01-01 00:00. */
#define MS_PER_DAY INT64_C(86400000)

#define CELL_BYTES 16
#define START_BYTES 8
/* Per column: op, framing, size, scale, narrower (bit k: a BYTE_LEN value of 2**k bytes is
 * legal too, and read by Python), 0, and a uint16 "most" (text: the declared maximum bytes). */
#define PROGRAM_BYTES 8
#define MAX_TIME_SCALE 7
/* Below this day number a datetime2 of any scale fits an int64 (10**7 days at 864 * 10**9
 * ticks a day, plus at most 2**40 ticks, is below 2**63), so the exact check is skipped. */
#define DATETIME2_SAFE_DAYS 10000000

/* Framing values of tdsrows.layout.Framing. */
enum framing { FIXED = 0, BYTE_LEN = 1, USHORT_LEN = 2 };

/* How a present value's bytes become a cell; the values of scan.py's _Op (exported below). */
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
    OP_DATETIME = 13, /* int32 days since 1900-01-01, then int32 1/300 s (MS-TDS 2.2.5.5.1.8) */
    OP_SMALLDATETIME = 14, /* uint16 days since 1900-01-01, then uint16 minutes */
    OP_NTEXT = 15,    /* nvarchar: as OP_TEXT, and an even number of bytes */
    OP_LAST = OP_NTEXT
};

/* Bytes of time(s) by scale (MS-TDS 2.2.5.5.1.8), as tdsrows.layout.TIME_BYTES. */
static const unsigned char time_bytes[MAX_TIME_SCALE + 1] = {3, 3, 3, 4, 4, 5, 5, 5};

/* Ticks of 10**-s second in a day, by scale s. */
static const int64_t ticks_per_day[MAX_TIME_SCALE + 1] = {
    86400LL,          864000LL,          8640000LL,          86400000LL,
    864000000LL,      8640000000LL,      86400000000LL,      864000000000LL,
};

/* The cell of primitive_cells (Python), as the worksheet encoder reads it (native byte order). */
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
    /* memcpy: a writable buffer passed in from Python need not be 8-byte aligned. */
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

/* The time part of a datetime2 of `size` bytes at `v`: ticks of 10**-scale second. */
static inline int64_t
datetime2_ticks(const unsigned char *v, size_t size)
{
    size_t time_size = size - 3;
    if (time_size == 3)
        return le24(v);
    if (time_size == 4)
        return le32(v);
    return (int64_t)le32(v) | (int64_t)v[4] << 32;
}

/* Ticks of 10**-scale second since 0001-01-01 of a datetime2 of `size` bytes at `v` whose time
 * is less than a day (the caller checked: a day or more is MALFORMED), into *out; 0 when an
 * int64 cannot hold the sum (valid dates, up to 9999-12-31, always fit; only scale 7 with a day
 * number past 10.6 million overflows). */
static inline int
datetime2_value(const unsigned char *v, size_t size, unsigned scale, int64_t *out)
{
    int64_t ticks = datetime2_ticks(v, size);
    int64_t days = le24(v + size - 3);
    int64_t per_day = ticks_per_day[scale];
    if (days >= DATETIME2_SAFE_DAYS && days > (INT64_MAX - ticks) / per_day)
        return 0;
    *out = days * per_day + ticks;
    return 1;
}

/* The narrower lengths an op may be told are legal: ints of 1, 2 or 4 bytes below their size,
 * a 4-byte value of a float, money or datetime (smalldatetime) of 8 (the bits of "narrower"). */
static unsigned
narrower_allowed(unsigned op, unsigned size)
{
    switch (op) {
    case OP_INT16:
    case OP_INT32:
    case OP_INT64: {
        unsigned mask = 0;
        for (unsigned k = 0; k < 3; k++) {
            if (1u << k < size)
                mask |= 1u << k;
        }
        return mask;
    }
    case OP_FLOAT64:
    case OP_MONEY8:
    case OP_DATETIME:
        return 1u << 2;
    default:
        return 0;
    }
}

/* Checks the program: raises ValueError and returns 0 if it is not one scan.py builds. */
static int
check_program(const unsigned char *program, Py_ssize_t width)
{
    for (Py_ssize_t i = 0; i < width; i++) {
        const unsigned char *c = program + i * PROGRAM_BYTES;
        unsigned op = c[0], framing = c[1], size = c[2], scale = c[3], narrower = c[4];
        unsigned most = le16(c + 6);
        int ok;
        if (c[5] != 0) {
            ok = 0;
        }
        else if (op == OP_TEXT || op == OP_NTEXT) {
            ok = framing == USHORT_LEN && size == 0 && scale == 0 && narrower == 0 &&
                 most >= 1 && most < NULL_USHORT_LEN;
        }
        else if ((framing != FIXED && framing != BYTE_LEN) || most != 0 ||
                 (narrower != 0 && framing != BYTE_LEN)) {
            ok = 0;
        }
        else if (op == OP_DATETIME2) {
            ok = scale <= MAX_TIME_SCALE && size == 3u + time_bytes[scale] && narrower == 0;
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
            case OP_SMALLDATETIME:
                expected = 4;
                break;
            case OP_INT64:
            case OP_MONEY8:
            case OP_FLOAT64:
            case OP_DATETIME:
                expected = 8;
                break;
            case OP_DECIMAL:
                expected = (size == 5 || size == 9 || size == 13 || size == 17) ? size : 0;
                break;
            default:
                expected = 0;
                break;
            }
            ok = expected != 0 && size == expected && scale == 0 &&
                 (narrower & ~narrower_allowed(op, size)) == 0;
        }
        if (!ok) {
            PyErr_Format(PyExc_ValueError,
                         "program: column %zd is not a valid (op %u, framing %u, size %u, "
                         "scale %u, narrower %u, %u, most %u)",
                         i, op, framing, size, scale, narrower, (unsigned)c[5], most);
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
        int malformed = 0;
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
                /* More than the declared maximum, or half a UTF-16 unit: no value of this
                 * column's type (decided before the bytes are there). */
                if (size > le16(c + 6) || (c[0] == OP_NTEXT && (size & 1))) {
                    malformed = 1;
                    break;
                }
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
                    /* A narrower value the type allows (an INTN(8) column may send 4 bytes):
                     * not what the program reads, so the Python decoder reads this row. Any
                     * other length is no value of this column's type. */
                    unsigned bit = length == 1 ? 1u : length == 2 ? 2u : length == 4 ? 4u : 0u;
                    if ((c[4] & bit) == 0) {
                        malformed = 1;
                        break;
                    }
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
            /* A time of a day or more would pass for the next day in the sum: checked even in
             * a row already SLOW (a datetime2's size is always the program's). */
            if (c[0] == OP_DATETIME2 && datetime2_ticks(v, size) >= ticks_per_day[c[3]]) {
                malformed = 1;
                break;
            }
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
            case OP_DATETIME: {
                /* Milliseconds since 1900-01-01, the 1/300 s rounded to the nearest ms as pytds
                 * rounds them (t % 300 * 10 / 3 is never halfway: (x * 10 + 1) // 3). A negative
                 * time is not one SQL Server sends: Python's floor division decides it. */
                int64_t days = (int32_t)le32(v), t = (int32_t)le32(v + 4);
                if (t < 0) {
                    slow = 1;
                    continue;
                }
                value = days * MS_PER_DAY + t / 300 * 1000 + (t % 300 * 10 + 1) / 3;
                break;
            }
            case OP_SMALLDATETIME:
                value = (int64_t)le16(v) * MS_PER_DAY + (int64_t)le16(v + 2) * 60000;
                break;
            default: /* OP_BIT: the program check admits no other op */
                value = v[0] != 0;
                break;
            }
            put_cell(cell, value, 0);
        }
        if (malformed) {
            stop = STOP_MALFORMED;
            break;
        }
        if (cut) {
            stop = STOP_INCOMPLETE;
            break;
        }
        if (slow) {
            /* Where the SLOW row ends, in the start slot after the last row (there is one:
             * FULL would have been decided before this row), so that the caller can decode
             * exactly that row's bytes. */
            int64_t end = (int64_t)q;
            memcpy(starts + (size_t)rows * START_BYTES, &end, sizeof end);
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

/* ---- cells to tuples ------------------------------------------------------------------- */

/* How a cell becomes a Python object; the values of scan.py's Conversion (exported below).
 * The plan holds
 * PLAN_BYTES per column: the conversion and its scale (datetime2 digits, decimal scale). */
enum conversion {
    CONV_INT = 1,        /* an INT64 cell: int (also a raw kind's integer) */
    CONV_FLOAT = 2,      /* a DOUBLE cell: float */
    CONV_BOOL = 3,       /* a BOOL cell: bool */
    CONV_DATE = 4,       /* days since 0001-01-01: datetime.date (MS-TDS 2.2.5.5.1.8) */
    CONV_DATETIME2 = 5,  /* ticks of 10**-scale s since 0001-01-01: datetime.datetime */
    CONV_UTF16 = 6,      /* UTF-16LE bytes: str */
    CONV_BYTE_TEXT = 7,  /* code-page bytes: str (ASCII here, the rest by the helper) */
    CONV_DECIMAL = 8,    /* value * 10**scale: decimal.Decimal, made by the helper (the
                          * Decimal type; MS-TDS 2.2.5.5.1.6, money 2.2.5.5.1.4) */
    CONV_LAST = CONV_DECIMAL
};

#define PLAN_BYTES 2
#define MAX_DECIMAL_SCALE 38 /* decimal(38, 38): SQL Server's largest scale */
/* datetime.date's last day (MAXYEAR 9999-12-31) in days since 0001-01-01; a day past it has no
 * date object, and the row goes to the Python decoder, which raises what pytds raises. */
#define MAX_DAY 3652058
/* Days from 0000-03-01 to 0001-01-01 (March to December of the proleptic Gregorian year 0):
 * counting from a March 1st puts the leap day last in the year, which civil_from_days needs. */
#define DAYS_BEFORE_0001 306
#define DAYS_PER_400_YEARS 146097
#define MICROS_PER_SECOND 1000000
#define SECONDS_PER_HOUR 3600
#define SECONDS_PER_MINUTE 60
/* Room for a decimal's text: a sign, 20 digits (the most a uint64 has), "E-38". */
#define DECIMAL_TEXT_BYTES 32

/* Powers of ten by exponent, 0 to 7: time(s) ticks to 100 ns units and to microseconds. */
static const int64_t powers_of_ten[MAX_TIME_SCALE + 1] = {
    1LL, 10LL, 100LL, 1000LL, 10000LL, 100000LL, 1000000LL, 10000000LL,
};

/* (year, month, day) of `days` since 0001-01-01 (0 <= days <= MAX_DAY), proleptic Gregorian as
 * datetime.date.fromordinal(days + 1). H. Hinnant's civil_from_days, on a count that starts
 * on 0000-03-01 and is never negative. */
static void
civil_from_days(int64_t days, int *year, int *month, int *day)
{
    int64_t z = days + DAYS_BEFORE_0001;
    int64_t era = z / DAYS_PER_400_YEARS;
    int64_t doe = z - era * DAYS_PER_400_YEARS;                            /* [0, 146096] */
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;   /* [0, 399] */
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);                 /* [0, 365] */
    int64_t mp = (5 * doy + 2) / 153;                                      /* March = 0 */
    *day = (int)(doy - (153 * mp + 2) / 5 + 1);
    *month = (int)(mp < 10 ? mp + 3 : mp - 9);
    *year = (int)(yoe + era * 400 + (*month <= 2));
}

/* decimal.Decimal of `scaled` / 10**scale exactly as pytds computes it (Decimal(scaled) divided
 * by 10**scale in a 38-digit context). The quotient is exact, so decimal gives it the exponent
 * closest to the ideal one (the dividend's minus the divisor's: 0): as many trailing zeros of
 * `scaled` as the scale allows come off, and the result is Decimal of the text
 * "<digits>E-<exponent>", which it parses to that very coefficient and exponent (or of the
 * int, when the exponent comes to 0). */
static PyObject *
decimal_object(PyObject *make, int64_t scaled, unsigned scale)
{
    /* The magnitude as a uint64: money's -2**63 has no positive int64. */
    uint64_t magnitude = scaled < 0 ? (uint64_t)0 - (uint64_t)scaled : (uint64_t)scaled;
    unsigned exponent = scale;
    while (exponent > 0 && magnitude % 10 == 0) {
        magnitude /= 10;
        exponent--;
    }
    if (exponent == 0) {
        /* A whole number: Decimal(int) is the same coefficient and exponent, and decimal
         * converts an int faster than it parses text. */
        PyObject *whole;
        if (scale == 0) {
            whole = PyLong_FromLongLong(scaled);
        }
        else { /* divided by 10 at least once, so below 2**63 */
            long long digits = (long long)magnitude;
            whole = PyLong_FromLongLong(scaled < 0 ? -digits : digits);
        }
        if (whole == NULL)
            return NULL;
        PyObject *value = PyObject_CallOneArg(make, whole);
        Py_DECREF(whole);
        return value;
    }
    char text[DECIMAL_TEXT_BYTES];
    char *end = text + sizeof text;
    char *p = end;
    if (exponent > 0) {
        *--p = (char)('0' + exponent % 10);
        if (exponent >= 10)
            *--p = (char)('0' + exponent / 10);
        *--p = '-';
        *--p = 'E';
    }
    do {
        *--p = (char)('0' + magnitude % 10);
        magnitude /= 10;
    } while (magnitude != 0);
    if (scaled < 0)
        *--p = '-';
    PyObject *str = PyUnicode_New(end - p, 127);
    if (str == NULL)
        return NULL;
    memcpy(PyUnicode_1BYTE_DATA(str), p, (size_t)(end - p));
    PyObject *value = PyObject_CallOneArg(make, str);
    Py_DECREF(str);
    return value;
}

/* 1 if every byte is below 0x80 (the text is ASCII in every code page SQL Server has). */
static int
is_ascii(const unsigned char *p, size_t n)
{
    unsigned char any = 0;
    size_t i = 0;
    /* Eight bytes at a time: memcpy, since text starts at any offset. */
    for (; i + 8 <= n; i += 8) {
        uint64_t word;
        memcpy(&word, p + i, sizeof word);
        if (word & 0x8080808080808080ULL)
            return 0;
    }
    for (; i < n; i++)
        any |= p[i];
    return any < 0x80;
}

/* Checks the plan and its helpers: raises ValueError/TypeError and returns 0 if they are not
 * what scan.py builds. */
static int
check_plan(const unsigned char *plan, Py_ssize_t width, PyObject *helpers)
{
    if (!PyTuple_Check(helpers) || PyTuple_GET_SIZE(helpers) != width) {
        PyErr_Format(PyExc_TypeError, "helpers must be a tuple of %zd items", width);
        return 0;
    }
    for (Py_ssize_t i = 0; i < width; i++) {
        unsigned conversion = plan[i * PLAN_BYTES], scale = plan[i * PLAN_BYTES + 1];
        int ok = conversion >= CONV_INT && conversion <= CONV_LAST;
        if (conversion == CONV_DATETIME2)
            ok = scale <= MAX_TIME_SCALE;
        else if (conversion == CONV_DECIMAL)
            ok = scale <= MAX_DECIMAL_SCALE;
        else
            ok = ok && scale == 0;
        if (!ok) {
            PyErr_Format(PyExc_ValueError,
                         "plan: column %zd is not a valid (conversion %u, scale %u)", i,
                         conversion, scale);
            return 0;
        }
        int needs_helper = conversion == CONV_BYTE_TEXT || conversion == CONV_DECIMAL;
        if (needs_helper && !PyCallable_Check(PyTuple_GET_ITEM(helpers, i))) {
            PyErr_Format(PyExc_TypeError, "helpers: column %zd needs a callable", i);
            return 0;
        }
    }
    return 1;
}

/* The object of one present cell, a new reference; NULL with an exception set, or NULL with
 * *declined set (and no exception) when the value has no object (a day past MAX_DAY). */
static PyObject *
cell_object(const unsigned char *data, Py_ssize_t n, const cell_t *c, unsigned conversion,
            unsigned scale, PyObject *helper, Py_ssize_t column, int *declined)
{
    switch (conversion) {
    case CONV_INT:
        return PyLong_FromLongLong(c->value);
    case CONV_FLOAT: {
        double x;
        memcpy(&x, &c->value, sizeof x);
        return PyFloat_FromDouble(x);
    }
    case CONV_BOOL:
        return PyBool_FromLong(c->value != 0);
    case CONV_DATE: {
        if (c->value < 0 || c->value > MAX_DAY) {
            *declined = 1;
            return NULL;
        }
        int y, m, d;
        civil_from_days(c->value, &y, &m, &d);
        return PyDateTimeAPI->Date_FromDate(y, m, d, PyDateTimeAPI->DateType);
    }
    case CONV_DATETIME2: {
        /* The scanner refuses a time of a day or more (MALFORMED), so the sum splits back
         * exactly. */
        int64_t per_day = ticks_per_day[scale];
        if (c->value < 0 || c->value / per_day > MAX_DAY) {
            *declined = 1;
            return NULL;
        }
        int64_t days = c->value / per_day, ticks = c->value % per_day;
        /* pytds: ticks to 100 ns units, then truncated to microseconds. */
        int64_t micros = scale == MAX_TIME_SCALE
                             ? ticks / 10
                             : ticks * powers_of_ten[MAX_TIME_SCALE - 1 - scale];
        int64_t seconds = micros / MICROS_PER_SECOND;
        int y, m, d;
        civil_from_days(days, &y, &m, &d);
        return PyDateTimeAPI->DateTime_FromDateAndTime(
            y, m, d, (int)(seconds / SECONDS_PER_HOUR),
            (int)(seconds / SECONDS_PER_MINUTE % SECONDS_PER_MINUTE),
            (int)(seconds % SECONDS_PER_MINUTE), (int)(micros % MICROS_PER_SECOND), Py_None,
            PyDateTimeAPI->DateTimeType);
    }
    case CONV_DECIMAL:
        return decimal_object(helper, c->value, scale);
    default: /* text: CONV_UTF16, CONV_BYTE_TEXT */
        break;
    }
    if (c->length < 0 || c->value < 0 || c->value > n - c->length) {
        PyErr_Format(PyExc_ValueError,
                     "cells: column %zd's text (%lld bytes at %lld) is outside the data", column,
                     (long long)c->length, (long long)c->value);
        return NULL;
    }
    const unsigned char *text = data + c->value;
    Py_ssize_t size = c->length;
    if (conversion == CONV_UTF16) {
        /* As codecs.utf_16_le_decode(b, 'surrogatepass', True) (tdsrows.values.ntext_value):
         * lone surrogates kept, the last one too, a BOM kept as U+FEFF (the scanner admits an
         * even number of bytes only). */
        int byteorder = -1;
        return PyUnicode_DecodeUTF16Stateful((const char *)text, size, "surrogatepass",
                                             &byteorder, NULL);
    }
    if (is_ascii(text, (size_t)size)) {
        PyObject *str = PyUnicode_New(size, 127);
        if (str != NULL)
            memcpy(PyUnicode_1BYTE_DATA(str), text, (size_t)size);
        return str;
    }
    PyObject *bytes = PyBytes_FromStringAndSize((const char *)text, size);
    if (bytes == NULL)
        return NULL;
    PyObject *str = PyObject_CallOneArg(helper, bytes);
    Py_DECREF(bytes);
    return str;
}

PyDoc_STRVAR(tuples_doc,
"tuples(data, cells, first, rows, plan, helpers, out) -> next\n\n"
"Append rows first..rows-1 of the scanned cells to the list out as tuples (see\n"
"tdsrows/scan.py); next is rows, or the row it declined (not appended).");

static PyObject *
tuples(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 7) {
        PyErr_Format(PyExc_TypeError, "tuples() takes 7 arguments (%zd given)", nargs);
        return NULL;
    }
    Py_buffer data = {0}, cells = {0}, plan = {0};
    PyObject *result = NULL;
    PyObject *helpers = args[5], *out = args[6];

    Py_ssize_t first = PyLong_AsSsize_t(args[2]);
    if (first == -1 && PyErr_Occurred())
        return NULL;
    Py_ssize_t rows = PyLong_AsSsize_t(args[3]);
    if (rows == -1 && PyErr_Occurred())
        return NULL;
    if (!PyList_Check(out)) {
        PyErr_Format(PyExc_TypeError, "out must be a list, not %.100s", Py_TYPE(out)->tp_name);
        return NULL;
    }
    if (PyObject_GetBuffer(args[0], &data, PyBUF_SIMPLE) < 0)
        goto done;
    if (PyObject_GetBuffer(args[1], &cells, PyBUF_SIMPLE) < 0)
        goto done;
    if (PyObject_GetBuffer(args[4], &plan, PyBUF_SIMPLE) < 0)
        goto done;
    if (plan.len == 0 || plan.len % PLAN_BYTES != 0) {
        PyErr_Format(PyExc_ValueError, "plan: %d bytes per column expected, got %zd bytes",
                     PLAN_BYTES, plan.len);
        goto done;
    }
    Py_ssize_t width = plan.len / PLAN_BYTES;
    if (!check_plan(plan.buf, width, helpers))
        goto done;
    if (first < 0 || rows < first || rows > cells.len / CELL_BYTES / width) {
        PyErr_Format(PyExc_ValueError, "rows %zd to %zd are not in the cells (%zd bytes)", first,
                     rows, cells.len);
        goto done;
    }

    const unsigned char *bytes = data.buf, *program = plan.buf;
    Py_ssize_t k = first;
    for (; k < rows; k++) {
        PyObject *row = PyTuple_New(width);
        if (row == NULL)
            goto done;
        const unsigned char *at = (const unsigned char *)cells.buf + k * width * CELL_BYTES;
        int declined = 0;
        for (Py_ssize_t i = 0; i < width; i++, at += CELL_BYTES) {
            cell_t c;
            memcpy(&c, at, sizeof c); /* a bytearray's buffer need not be 8-byte aligned */
            PyObject *value;
            if (c.length == -1) {
                value = Py_NewRef(Py_None);
            }
            else {
                value = cell_object(bytes, data.len, &c, program[i * PLAN_BYTES],
                                    program[i * PLAN_BYTES + 1], PyTuple_GET_ITEM(helpers, i),
                                    i, &declined);
                if (value == NULL) {
                    /* The tuple's unset items are NULL, which its deallocation skips. */
                    Py_DECREF(row);
                    if (declined)
                        break;
                    goto done;
                }
            }
            PyTuple_SET_ITEM(row, i, value); /* steals the reference */
        }
        if (declined)
            break;
        int appended = PyList_Append(out, row);
        Py_DECREF(row);
        if (appended < 0)
            goto done;
    }
    result = PyLong_FromSsize_t(k);

done:
    PyBuffer_Release(&data);
    PyBuffer_Release(&cells);
    PyBuffer_Release(&plan);
    return result;
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
    {"tuples", (PyCFunction)(void (*)(void))tuples, METH_FASTCALL, tuples_doc},
    {NULL, NULL, 0, NULL},
};

/* The numbers this file shares with Python, as module constants: the Python definitions
 * (tdsrows/stops.py, tdsrows/scan.py, primitive_cells) are the ones Python code uses, also
 * without this module, and tests/test_tdsrows/test_c_constants.py holds these equal to them. */
static const struct {
    const char *name;
    long value;
} constants[] = {
    {"STOP_INCOMPLETE", STOP_INCOMPLETE}, {"STOP_FULL", STOP_FULL},
    {"STOP_SLOW", STOP_SLOW},             {"STOP_MALFORMED", STOP_MALFORMED},
    {"CELL_BYTES", CELL_BYTES},           {"START_BYTES", START_BYTES},
    {"PROGRAM_BYTES", PROGRAM_BYTES},     {"PLAN_BYTES", PLAN_BYTES},
    {"OP_UINT8", OP_UINT8},               {"OP_INT16", OP_INT16},
    {"OP_INT32", OP_INT32},               {"OP_INT64", OP_INT64},
    {"OP_MONEY8", OP_MONEY8},             {"OP_DECIMAL", OP_DECIMAL},
    {"OP_DATE", OP_DATE},                 {"OP_DATETIME2", OP_DATETIME2},
    {"OP_FLOAT32", OP_FLOAT32},           {"OP_FLOAT64", OP_FLOAT64},
    {"OP_BIT", OP_BIT},                   {"OP_TEXT", OP_TEXT},
    {"OP_DATETIME", OP_DATETIME},         {"OP_SMALLDATETIME", OP_SMALLDATETIME},
    {"OP_NTEXT", OP_NTEXT},               {"CONV_INT", CONV_INT},
    {"CONV_FLOAT", CONV_FLOAT},           {"CONV_BOOL", CONV_BOOL},
    {"CONV_DATE", CONV_DATE},             {"CONV_DATETIME2", CONV_DATETIME2},
    {"CONV_UTF16", CONV_UTF16},           {"CONV_BYTE_TEXT", CONV_BYTE_TEXT},
    {"CONV_DECIMAL", CONV_DECIMAL},
};

/* The constants above, and the datetime C API (a capsule of the datetime module), looked up
 * once, on import. */
static int
exec_module(PyObject *module)
{
    for (size_t k = 0; k < sizeof constants / sizeof constants[0]; k++) {
        if (PyModule_AddIntConstant(module, constants[k].name, constants[k].value) < 0)
            return -1;
    }
    PyDateTime_IMPORT;
    return PyDateTimeAPI == NULL ? -1 : 0;
}

/* No module state: multi-phase initialisation, as xlsx._rowxml, so subinterpreters can load
 * it. Not those with a GIL of their own: the datetime C API pointer is one per process (a
 * static of this file), and so are the datetime types it makes. The GIL stays on in a
 * free-threaded build (the functions were not reviewed for calls without it). scan() keeps
 * the GIL while it walks a packet although it touches no Python object: releasing it was
 * measured (two exports on threads of one worker, docs/row-path.md) and gained nothing. */
static PyModuleDef_Slot slots[] = {
    {Py_mod_exec, exec_module},
#ifdef Py_mod_multiple_interpreters
    {Py_mod_multiple_interpreters, Py_MOD_MULTIPLE_INTERPRETERS_SUPPORTED},
#endif
#ifdef Py_mod_gil
    {Py_mod_gil, Py_MOD_GIL_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "tdsrows._rowscan",
    .m_doc = "ROW/NBCROW tokens to typed primitive cells, and cells to tuples (see "
             "tdsrows/scan.py).",
    .m_size = 0,
    .m_methods = methods,
    .m_slots = slots,
};

PyMODINIT_FUNC
PyInit__rowscan(void)
{
    return PyModuleDef_Init(&module_def);
}
