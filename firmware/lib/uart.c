/* Byte I/O on the UART, and the way out: exit waits for the last byte to leave. */
#include "rvnpu.h"

int putchar(int c)
{
    while (!(RVNPU_UART_STATUS & RVNPU_UART_STATUS_TX_READY_MASK))
        ;
    RVNPU_UART_DATA = (uint8_t)c;
    return (uint8_t)c;
}

int puts(const char *s)
{
    while (*s)
        putchar(*s++);
    putchar('\n');
    return 0;
}

int rvnpu_uart_getc(void)
{
    uint32_t data = RVNPU_UART_DATA;
    return (data & RVNPU_UART_DATA_EMPTY_MASK) ? -1 : (int)(data & RVNPU_UART_DATA_BYTE_MASK);
}

void rvnpu_exit(int code)
{
    /* A byte still shifting out would be cut off by the end of the simulation. */
    while (!(RVNPU_UART_STATUS & RVNPU_UART_STATUS_TX_IDLE_MASK))
        ;
    RVNPU_SIM_EXIT = (uint32_t)code;
    for (;;)
        ;
}
