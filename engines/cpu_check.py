"""Proof by construction that the installed llama.cpp library runs on any CPU of its named baseline.

llama.cpp's default build (`GGML_NATIVE=ON`, i.e. `-march=native`) uses whatever the compiling machine has:
AVX-512, AVX-VNNI, AMX. Such a library faults (SIGILL, or a general protection fault at `ldtilecfg` on a VM
that advertises AMX without enabling it) on any other machine, and a Space, a Docker image or a shared wheel
cache always runs it on another machine. requirements.txt builds for x86-64-v3 (AVX2, FMA, F16C, BMI2)
instead; this module checks the built library for instructions above that baseline by disassembling it
(`objdump`), so a build on any machine proves what every machine will run:

    python -m engines.cpu_check            # exit 0: at or below the baseline; 1: above it (each file named)

What counts as above x86-64-v3: any AVX-512 register (zmm0-31, xmm/ymm16-31) or mask register (k0-7), AMX
tile instructions, and AVX-VNNI / AVX-512 instructions that also exist in 128/256-bit forms (vpdpbusd,
vpdpwssd, vdpbf16ps, vcvtne2ps2bf16, vpternlog, vpermt2/vpermi2, ...). The build has no runtime-selected
variants (`GGML_BACKEND_DL=OFF`), so every instruction in the library may run. On aarch64 the check passes
only SVE-free code (no `z` registers, no `p` predicates), as `GGML_NATIVE=OFF` builds for plain armv8-a.
"""

from __future__ import annotations

import argparse
import platform
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

from engines.llamacpp_lib import library_dir, library_files

BASELINE = {"x86_64": "x86-64-v3 (AVX2, FMA, F16C, BMI2)", "aarch64": "armv8-a (NEON, no SVE)"}

_X86_REGISTERS = re.compile(r"%(zmm\d+|[xy]mm(?:1[6-9]|2\d|3[01])|k[0-7])\b")
_X86_MNEMONICS = re.compile(
    r"^\s*[0-9a-f]+:\s+(?:\{\w+\}\s*)?("
    r"tile\w*|ldtilecfg|sttilecfg|tdp\w+|tcmmimfp16ps|tcmmrlfp16ps"  # AMX
    r"|vpdpbusds?|vpdpwssds?"  # AVX-VNNI / AVX512-VNNI
    r"|vdpbf16ps|vcvtne2ps2bf16|vcvtneps2bf16"  # AVX512-BF16
    r"|vpternlog[dq]|vperm[ti]2\w+|vp?compress\w+|vp?expand\w+|vscatter\w+"  # AVX-512 only
    r"|vpmadd52\w+|vpopcnt[bwdq]|vpshufbitqmb|vgf2p8\w+|vaes\w+|vpclmulqdq"  # above v3 in any width
    r"|k(?:and|or|xor|not|mov|shift|test|ortest|add|unpck)\w*"  # mask-register instructions
    r")\b"
)
_ARM_ABOVE = re.compile(r"\b(z\d{1,2}\.[bhsdq]|p\d{1,2}/[mz]|p\d{1,2}\.[bhsd])\b")  # SVE registers


def _objdump() -> str:
    tool = shutil.which("objdump")
    if tool is None:
        raise RuntimeError("objdump (binutils) is needed to check the library: apt-get install binutils")
    return tool


def above_baseline(path: Path, machine: str | None = None) -> Counter:
    """What in the code of one shared library is above the baseline of `machine` (this one by default):
    mnemonic or register -> how many instructions use it. Empty: everything is at or below the baseline."""
    machine = machine or platform.machine()
    command = [_objdump(), "-d", "-w", "--no-show-raw-insn", str(path)]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    found: Counter = Counter()
    for line in out.splitlines():
        if machine == "aarch64":
            for match in _ARM_ABOVE.finditer(line):
                found[match.group(1).split(".")[0].rstrip("/mz")] += 1
            continue
        match = _X86_MNEMONICS.match(line)
        if match:
            found[match.group(1)] += 1
            continue
        registers = _X86_REGISTERS.findall(line)
        if registers:
            found[re.sub(r"\d+$", "", registers[0]) + "-registers"] += 1
    return found


def check_library(folder: Path | None = None) -> dict[str, Counter]:
    """{library file name: what it holds above the baseline} for every library in `folder` (the installed
    llama-cpp-python's by default) that holds anything above it. Raises FileNotFoundError with one sentence
    when there is no library to check."""
    folder = folder or library_dir()
    if folder is None or not folder.is_dir() or not library_files(folder):
        raise FileNotFoundError("llama-cpp-python is not installed, so there is no llama.cpp library to check.")
    return {p.name: c for p in library_files(folder) if (c := above_baseline(p))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engines.cpu_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--lib", type=Path, default=None, help="the library folder (default: llama-cpp-python's)")
    args = parser.parse_args(argv)
    baseline = BASELINE.get(platform.machine(), platform.machine())
    try:
        problems = check_library(args.lib)
    except (FileNotFoundError, RuntimeError) as exc:
        print(exc)
        return 2
    folder = args.lib or library_dir()
    if not problems:
        names = ", ".join(p.name for p in library_files(folder))
        print(f"OK: {names} in {folder} use nothing above {baseline}.")
        return 0
    for name, found in problems.items():
        top = ", ".join(f"{k} x{v}" for k, v in found.most_common(6))
        print(f"ABOVE {baseline}: {name}: {top}")
    print("Rebuild llama-cpp-python for the baseline: make engine (see requirements.txt).")
    return 1


if __name__ == "__main__":
    sys.exit(main())
