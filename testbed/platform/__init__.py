"""The P2P/FPP platform: MQTT protocol, service, durable ledger, prosumer agents and the mosaik bridge.

Adapters (MQTT, SQL) live here beside the pure parts (``protocol``, ``clearing``, ``policy``); see
``docs/platform.md``.
"""
