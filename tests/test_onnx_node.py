"""The ONNX backend node tests as a peer suite (issue 5, "Quality of the C"): every case whose ops
Rill claims to support and whose runtime input and output are float32 is compiled to C at
--bits 32 (its first input is the runtime input, the others are bound as constants), run, and
compared with the case's expected output within contract §3's tolerance. Prints how many cases
were run, passed and skipped as unsupported; fails on any attempted case that fails (a wrong
result, or a crash instead of a clear RillError). The data comes from the onnx==1.19.1 wheel
(tests/onnx_node_cases.py fetches it once); without network the test skips saying why."""
from __future__ import annotations

from collections import Counter

import pytest

from onnx_node_cases import (NODE_ONNX_VERSION, Result, all_cases, load_case, node_data_dir,
                             run_case)


def test_onnx_backend_node_cases(tmp_path):
    root, why = node_data_dir()
    if root is None:
        pytest.skip(f"ONNX node test data unavailable: {why}")
    results: list[Result] = []
    for index, folder in enumerate(all_cases(root)):
        case = load_case(folder)
        if isinstance(case, str):  # an op, dtype or signature Rill does not claim to support
            results.append(Result(folder.name, "unsupported", case))
            continue
        results.append(run_case(case, index, tmp_path))
    counts = Counter(r.status for r in results)
    run = counts["passed"] + counts["failed"]
    refused = [r for r in results if r.status == "unsupported" and not r.detail.startswith(
        ("ops ", "non-float32", "0 inputs")) and "outputs" not in r.detail]
    print(f"\nONNX backend node tests (onnx {NODE_ONNX_VERSION} data, {len(results)} cases): "
          f"{run} run, {counts['passed']} passed, {counts['failed']} failed, "
          f"{counts['unsupported']} skipped as unsupported ({len(refused)} of them refused by "
          "Rill with a clear error, listed below)")
    for r in results:
        if r.status != "unsupported":
            print(f"  {r.status:6s} {r.name}: {r.detail}")
    for r in refused:
        print(f"  refused {r.name}: {r.detail}")
    failed = [f"{r.name}: {r.detail}" for r in results if r.status == "failed"]
    assert not failed, "ONNX node tests failed:\n" + "\n".join(failed)
    assert run > 0, "no ONNX node test case was attempted"
