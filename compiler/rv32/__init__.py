"""The generated C on the ESP32-P4's base ISA (RV32IMAFC) without the chip: cross-compiled with
Debian's riscv64-unknown-elf-gcc and picolibc (`build`), executed in the unicorn CPU emulator with
every executed instruction counted (`emulator`), driven through a component's public API
(`component`). Used by the target tests (tests/test_rv32.py) and `make bench`."""
