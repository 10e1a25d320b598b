"""The fleet simulator: many stations running the daemon's own code in one process (`loa-sim fleet`)."""

from simulator.fleet.fleet import Fleet, FleetOptions, Summary, raise_fd_limit
from simulator.fleet.player import FirstBlock, VirtualPlayer
from simulator.fleet.procs import ProcessFleet
from simulator.fleet.station import FleetStation
from simulator.fleet.timers import Timers

__all__ = ["FirstBlock", "Fleet", "FleetOptions", "FleetStation", "ProcessFleet", "Summary", "Timers", "VirtualPlayer",
           "raise_fd_limit"]
