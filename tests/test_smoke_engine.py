from tests.conftest import wait_for
from tui.fleet.engine import Engine
from tui.fleet.monitor import FleetMonitor


def test_monitor_sees_a_started_container(engine: Engine, run_container):
    cid = run_container("sleep 60")
    mon = FleetMonitor(engine)
    mon.connect()
    mon.resync()
    names = {c.info.id: c.info.state for c in mon.snapshot().containers}
    assert names[cid] == "running"
    assert wait_for(lambda: True)
