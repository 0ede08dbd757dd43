"""What the compiler must know about each chip."""
from __future__ import annotations

from dataclasses import dataclass

from compiler.errors import UsageError


@dataclass(frozen=True)
class Target:
    name: str
    rounding: str  # "half_even" | "half_up": how the chip's requantization rounds ties
    internal_ram_bytes: int  # on-chip SRAM that the arena, state and stack may use at most
    description: str
    ram_name: str = "SRAM"  # what the chip's documentation calls that RAM
    core: str = ""  # the CPU core (the report says which compiler measured the code for it)
    # an FPU with a fused multiply-add that the int8 convs may accumulate in, exactly
    # (codegen/kernel_select.py, runtime/c/conv1d_fx.c)
    float_mac: bool = False


TARGETS: dict[str, Target] = {
    "esp32p4": Target("esp32p4", "half_even", 768 * 1024,
                      "ESP32-P4 (RISC-V, 768 KiB L2MEM); requantization rounds half to even",
                      ram_name="L2MEM", core="RISC-V RV32IMAFC + Espressif extensions",
                      float_mac=True),
    "esp32s3": Target("esp32s3", "half_up", 512 * 1024,
                      "ESP32-S3 (Xtensa LX7, 512 KiB SRAM); requantization rounds half up",
                      ram_name="SRAM", core="Xtensa LX7"),
}


def get_target(name: str) -> Target:
    try:
        return TARGETS[name.lower()]
    except KeyError:
        raise UsageError(f"unknown target '{name}': choose one of {', '.join(TARGETS)}") from None
