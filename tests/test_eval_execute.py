import time

from sparsing_lib.evaluation import execute as X

ADD = "def add(a, b):\n    return a + b\n"


def test_passing_failing_and_crashing_programs():
    assert X.run_program(ADD + "assert add(1, 2) == 3\n") == X.PASSED
    assert X.run_program(ADD + "assert add(1, 2) == 4\n") == X.FAILED
    assert X.run_program("def add(a, b):\n    return a +\n") == X.FAILED  # syntax error


def test_infinite_loop_times_out_quickly():
    start = time.monotonic()
    assert X.run_program("while True:\n    pass\n", timeout=1.0) == X.TIMEOUT
    assert time.monotonic() - start < 5


def test_network_is_blocked():
    probe = "import socket\ntry:\n    socket.create_connection(('127.0.0.1', 9))\nexcept OSError as e:\n"
    assert X.run_program(probe + "    assert 'disabled' in str(e)\n") == X.PASSED
    assert X.run_program("import socket\nsocket.socket()\n") == X.FAILED
    assert X.run_program("import urllib.request\nurllib.request.urlopen('http://example.com')\n") == X.FAILED


def test_memory_limit_and_temp_dir():
    assert X.run_program("x = bytearray(4 << 30)\n", memory_mb=512) == X.FAILED
    assert X.run_program("import os\nassert os.listdir('.') == ['program.py']\n") == X.PASSED


def test_run_programs_keeps_order_and_dedups():
    srcs = [ADD + "assert add(1, 1) == 2\n", "raise SystemExit(1)\n", ADD + "assert add(1, 1) == 2\n"]
    assert X.run_programs(srcs, workers=2) == [X.PASSED, X.FAILED, X.PASSED]
