// Package hal is the root of the hardware layer: bytes on wires and levels on
// pins. Its children each own one part:
//
//   - iso14443a: ISO/IEC 14443-3 Type A framing (CRC_A, BCC, commands).
//   - rc522: the MFRC522 driver over periph.io SPI and GPIO, and the reader
//     loop that turns RF activity into card events.
//   - rc522/rc522emu: a register-level MFRC522 emulator with virtual cards, for
//     tests, benchmarks and the demo.
//   - indicator: LEDs and buzzer with named, non-blocking patterns.
//   - button: the two enrolment push buttons, debounced.
//   - display: the small screen (SSD1306) and its Korean font.
//   - pi: Raspberry Pi wiring through periph.io/x/host.
//
// Nothing under hal knows about children, bookings or the portal (button
// names its presses with firmware's Button values, nothing more).
package hal
