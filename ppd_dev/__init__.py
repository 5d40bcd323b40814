"""What only developers run: training of the demo model, parity against the authors' code,
benchmarks and report generators. Installed into the README's venv (the ``ppd-*`` commands keep
working there), never into a colcon install: robots get only ``ppd_ros``."""
