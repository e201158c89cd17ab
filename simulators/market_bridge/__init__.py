"""The mosaik bridge to the platform: prosumer agents and the market clock, in simulation time.

``bridge.py`` (no mosaik) hosts each prosumer's energy management system as its own MQTT client and the
clock that announces gate closure; ``sim.py`` is the thin mosaik simulator around it.
"""
