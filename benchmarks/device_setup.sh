# Sourced by the GPU scripts (gpu.sh, gpu_schedule_ab.sh) from the project's root:
# the PyAV wheel carried in .whl/ installed (the GPU machine has no PyAV and no
# network, ../shared/docs/GPU.md), and the project itself on the path.
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=${PYTHONPATH:-}:$PWD
fi
export PYTHONUNBUFFERED=1
