/* The smallest program: greet over the UART, describe the chip, ask the engine how it is. */
#include "rvnpu.h"

int main(void)
{
    printf("Hello from rvnpu!\n");
    printf("%ux%u int%u engine, %u KiB RAM, %u MHz\n", RVNPU_ENGINE_ROWS, RVNPU_ENGINE_COLS,
           RVNPU_ENGINE_IN_WIDTH, RVNPU_RAM_BYTES / 1024, RVNPU_CLOCK_HZ / 1000000);
    uint32_t status = rvnpu_fence();
    printf("engine status 0x%08x (%s)\n", status, rvnpu_status_error(status) ? "error" : "ok");
    /* Every printf conversion once, for the tests that read this output. */
    printf("printf: [%d] [%i] [%u] [%x] [%X] [%5d] [%-5d] [%05d] [%s] [%c] [%%] [%lld]\n",
           -42, 7, 3000000000u, 0xbeefu, 0xbeefu, 42, 42, -42, "str", 'c',
           -1234567890123ll);
    rvnpu_set_leds(0xA5);
    return 0;
}
