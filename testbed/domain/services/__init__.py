"""Grid services as data, their test signals and their scoring (pure: no mosaik, Modbus, files or clocks).

- :mod:`.frequency`: frequency-response services (GB DC/DM/DR, ENTSO-E FCR, Nordic FFR/FCR-N/FCR-D, IEEE 1547
  frequency droop) with their curves, timing and tolerances, and the controller that turns a frequency into
  a response;
- :mod:`.voltage`: IEEE 1547.1-2020 Volt-VAR characteristics 1–3 and Volt-Watt, with the minimum required
  accuracies of IEEE 1547-2018 Table 3;
- :mod:`.signals`: test signals (frequency steps, ramps, sines, loss of infeed, a recorded series; the IEEE
  1547.1 §5.14 voltage step sequences);
- :mod:`.scoring` and :mod:`.scoring_1547`: criteria with their figures, gathered into a
  :class:`testbed.domain.verdict.Verdict`;
- :mod:`.testfile`: the schema of a service test file (``fpp test TEST.yaml``).
"""
