"""The pure domain: scenario models, device models and the home's EMS policy, the market library, KPIs,
verdicts and errors. No mosaik, no MQTT, no Modbus, no files, no clocks (tests/test_layers.py checks it)."""
