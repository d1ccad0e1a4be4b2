"""The graceful stop's signal handling, with real signals to this process."""

import os
import signal

import pytest

from prp_deploy.runtime.stopping import StopRequest, stop_on_signals


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_the_first_signal_asks_the_second_exits_with_128_plus_its_number(sig):
    before = signal.getsignal(sig)
    with stop_on_signals(StopRequest()) as stop:
        os.kill(os.getpid(), sig)
        assert stop.is_set() and stop.reason == signal.Signals(sig).name and stop.exit_code == 128 + sig
        with pytest.raises(SystemExit) as e:
            os.kill(os.getpid(), sig)
        assert e.value.code == 128 + sig
    assert signal.getsignal(sig) is before  # the application's own handlers come back


def test_an_application_asks_from_any_thread_and_the_first_reason_stays():
    stop = StopRequest()
    stop.request("shutting down the app")
    stop.request("again", signal.SIGTERM)
    assert stop.is_set() and stop.reason == "shutting down the app" and stop.exit_code is None
