/* A small printf: enough for benchmarks and self-tests, in well under a kilobyte of code. */
#include "rvnpu.h"

/* Digits of `value` in `base`, least significant first; returns how many. 32-bit values take
 * the 32-bit path so that a core without M divides by a constant, not through a 64-bit call. */
static int digits(char *buf, uint64_t value, unsigned base, int upper)
{
    const char *set = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    int n = 0;
    if (value >> 32) {
        do {
            buf[n++] = set[value % base];
            value /= base;
        } while (value);
    } else {
        uint32_t v = (uint32_t)value;
        do {
            buf[n++] = set[v % base];
            v /= base;
        } while (v);
    }
    return n;
}

static int pad(int count, char c)
{
    for (int i = 0; i < count; i++)
        putchar(c);
    return count > 0 ? count : 0;
}

int vprintf(const char *format, va_list args)
{
    int written = 0;
    for (const char *p = format; *p; p++) {
        if (*p != '%') {
            putchar(*p);
            written++;
            continue;
        }
        p++;
        int left = 0, zero = 0, width = 0, longs = 0;
        for (;; p++) {
            if (*p == '-')
                left = 1;
            else if (*p == '0')
                zero = 1;
            else
                break;
        }
        while (*p >= '0' && *p <= '9')
            width = width * 10 + (*p++ - '0');
        while (*p == 'l') {
            longs++;
            p++;
        }
        char buf[24];
        const char *text = buf;
        int len = 0, negative = 0;
        uint64_t value;
        switch (*p) {
        case 'd':
        case 'i': {
            int64_t v = longs >= 2 ? va_arg(args, long long) : va_arg(args, int);
            negative = v < 0;
            value = negative ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
            len = digits(buf, value, 10, 0);
            break;
        }
        case 'u':
        case 'x':
        case 'X':
            value = longs >= 2 ? va_arg(args, unsigned long long) : va_arg(args, unsigned);
            len = digits(buf, value, *p == 'u' ? 10 : 16, *p == 'X');
            break;
        case 'p':
            value = (uintptr_t)va_arg(args, void *);
            len = digits(buf, value, 16, 0);
            zero = 1;
            width = 8;
            break;
        case 'c':
            buf[0] = (char)va_arg(args, int);
            len = 1;
            break;
        case 's':
            text = va_arg(args, const char *);
            if (!text)
                text = "(null)";
            while (text[len])
                len++;
            break;
        case '%':
            buf[0] = '%';
            len = 1;
            break;
        default:                     /* unknown conversion: print it as it stands */
            putchar('%');
            written++;
            if (!*p)
                return written;
            buf[0] = *p;
            len = 1;
            break;
        }
        int numeric = *p == 'd' || *p == 'i' || *p == 'u' || *p == 'x' || *p == 'X' || *p == 'p';
        int fill = width - len - negative;
        if (!left && !(zero && numeric))
            written += pad(fill, ' ');
        if (negative) {
            putchar('-');
            written++;
        }
        if (!left && zero && numeric)
            written += pad(fill, '0');
        if (numeric) {
            for (int i = len - 1; i >= 0; i--)    /* digits are stored backwards */
                putchar(buf[i]);
        } else {
            for (int i = 0; i < len; i++)
                putchar(text[i]);
        }
        written += len;
        if (left)
            written += pad(fill, ' ');
    }
    return written;
}

int printf(const char *format, ...)
{
    va_list args;
    va_start(args, format);
    int written = vprintf(format, args);
    va_end(args);
    return written;
}
