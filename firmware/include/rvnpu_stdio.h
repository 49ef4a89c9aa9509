/*
 * rvnpu_stdio.h: text over the UART, without a C library.
 *
 * printf understands %d %i %u %x %X %p %s %c %%, a '0' or '-' flag, a field width, and the
 * 'l' (ignored: long is 32 bits) and 'll' (64-bit) length modifiers. Output is unbuffered: each
 * character waits for room in the UART's one-byte transmit buffer.
 */
#ifndef RVNPU_STDIO_H
#define RVNPU_STDIO_H

#include <stdarg.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

int putchar(int c);
int puts(const char *s);                  /* writes s and a newline */
int printf(const char *format, ...) __attribute__((__format__(__printf__, 1, 2)));
int vprintf(const char *format, va_list args);

/* Next received byte, or -1 if none is waiting. */
int rvnpu_uart_getc(void);

#ifdef __cplusplus
}
#endif

#endif /* RVNPU_STDIO_H */
