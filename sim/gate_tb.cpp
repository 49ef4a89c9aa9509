// The driver of a gate-level board simulation (rvnpu.sim.gate_level): it clocks the netlist,
// serves the SPI flash the SoC boots from, decodes the UART and stops at the firmware's verdict
// line or at the cycle limit (the watchdog).
//
// The netlist is wrapped in `gate_tb` (written by rvnpu.sim.gate_level) whose ports are the
// same on every board: clk, uart_tx, uart_rx, flash_cs_n, flash_sck, flash_copi, flash_cipo.
//
// Arguments: IMAGE FLASH_OFFSET DIVISOR MAX_CYCLES VERDICT...
//   IMAGE         the firmware image the flash serves from FLASH_OFFSET on (-1: no flash)
//   DIVISOR       clock cycles a UART bit
//   VERDICT       prefixes of the lines that end the run (the verdict, an early failure)
// Prints the UART's text on stdout, then "gate-sim: cycles N verdict|watchdog" on stderr.
// Exit status: 0 at the verdict line, 3 at the cycle limit, 2 on bad arguments.

#include "Vgate_tb.h"
#include "verilated.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

namespace {

// SPI mode 0 NOR flash: READ (0x03) and anything else ignored, erased (0xFF) outside the image;
// sampled once a clock cycle, as rvnpu.sim.spi_flash.SpiFlashModel does.
struct Flash {
    std::vector<unsigned char> image;
    long offset = -1;
    int prev_sck = 0, selected = 0, count = 0, reading = 0, bit = 8;
    unsigned received = 0, address = 0, cmd = 0, out_byte = 0;

    unsigned byte(unsigned a) const {
        if (offset < 0 || a < (unsigned long)offset || a - offset >= image.size()) return 0xFF;
        return image[a - offset];
    }

    // Returns the level to put on CIPO.
    int step(int sck, int cs_n, int copi, int cipo) {
        if (cs_n) {
            selected = reading = 0;
            bit = 8;
            prev_sck = sck;
            return cipo;
        }
        if (!selected) selected = 1, received = 0, count = 0;
        if (sck && !prev_sck) {
            received = (received << 1) | (copi & 1);
            if (++count == 8) cmd = received & 0xFF;
            if (count == 32 && cmd == 0x03) address = received & 0xFFFFFF, reading = 1;
        } else if (prev_sck && !sck && reading) {
            if (bit == 8) out_byte = byte(address++), bit = 0;
            cipo = (out_byte >> (7 - bit++)) & 1;
        }
        prev_sck = sck;
        return cipo;
    }
};

// 8N1 receiver sampling mid-bit, as the SoC's own UART receiver does.
struct UartRx {
    long divisor;
    long count = 0;
    int state = -1, prev = 1;   // -1 idle, 0 start bit, 1..8 data, 9 stop
    unsigned value = 0;

    // Returns a received byte, or -1.
    int step(int line) {
        int got = -1;
        if (state < 0) {
            if (prev && !line) state = 0, count = divisor / 2;
        } else if (--count == 0) {
            if (state == 0) {
                if (line) state = -1; else state = 1, value = 0, count = divisor;
            } else if (state <= 8) {
                value |= (unsigned)(line & 1) << (state - 1);
                state++, count = divisor;
            } else {
                if (line) got = (int)value;
                state = -1;
            }
        }
        prev = line;
        return got;
    }
};

}  // namespace

int main(int argc, char **argv) {
    if (argc < 6) {
        std::fprintf(stderr, "usage: %s IMAGE FLASH_OFFSET DIVISOR MAX_CYCLES VERDICT...\n",
                     argv[0]);
        return 2;
    }
    Flash flash;
    flash.offset = std::atol(argv[2]);
    if (flash.offset >= 0) {
        std::ifstream f(argv[1], std::ios::binary);
        if (!f) {
            std::fprintf(stderr, "cannot read %s\n", argv[1]);
            return 2;
        }
        flash.image.assign(std::istreambuf_iterator<char>(f), {});
    }
    UartRx uart{std::atol(argv[3])};
    const unsigned long long max_cycles = std::strtoull(argv[4], nullptr, 10);
    const std::vector<std::string> verdicts(argv + 5, argv + argc);

    const std::unique_ptr<VerilatedContext> context{new VerilatedContext};
    const std::unique_ptr<Vgate_tb> top{new Vgate_tb{context.get()}};
    top->clk = 0;
    top->uart_rx = 1;
    top->flash_cipo = 1;
    top->eval();

    std::string line;
    unsigned long long cycle = 0;
    int status = 3;
    for (; cycle < max_cycles; cycle++) {
        top->clk = 1;
        top->eval();
        top->flash_cipo = flash.step(top->flash_sck, top->flash_cs_n, top->flash_copi,
                                     top->flash_cipo);
        int c = uart.step(top->uart_tx);
        top->clk = 0;
        top->eval();
        if (c < 0) continue;
        std::fputc(c, stdout);
        if (c != '\n') {
            line.push_back((char)c);
            continue;
        }
        std::fflush(stdout);
        bool ends = false;
        for (const std::string &verdict : verdicts)
            ends = ends || line.compare(0, verdict.size(), verdict) == 0;
        if (ends) {
            status = 0;
            cycle++;
            break;
        }
        line.clear();
    }
    std::fflush(stdout);
    std::fprintf(stderr, "gate-sim: cycles %llu %s\n", cycle, status ? "watchdog" : "verdict");
    top->final();
    return status;
}
