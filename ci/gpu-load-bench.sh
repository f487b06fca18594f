#!/bin/bash
# A real GPU workload in front of the trtllm-bench test double: 3 s idle, 20 s of bf16
# matmuls, 3 s idle, then the double prints its report.
if [[ " $* " == *" throughput "* ]]; then
python3 - <<'PY'
import time, torch
a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16); b = torch.randn_like(a)
torch.cuda.synchronize(); time.sleep(3)
t = time.time(); n = 0
while time.time() - t < 20:
    for _ in range(20): c = a @ b
    torch.cuda.synchronize(); n += 20
print(f"matmul load: {n} products in 20 s, {n*2*8192**3/20/1e12:.0f} TFLOP/s", flush=True)
time.sleep(3)
PY
fi
# FAKE_TRTLLM_BENCH: the test double (target/release/fake-trtllm-bench by default).
exec "${FAKE_TRTLLM_BENCH:-$(dirname "$0")/../target/release/fake-trtllm-bench}" "$@"
