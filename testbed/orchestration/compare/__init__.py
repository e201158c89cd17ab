"""``fpp compare``: one scenario under several coordination strategies, each a complete co-simulation, side
by side (``comparison.json``, ``comparison.html``)."""
