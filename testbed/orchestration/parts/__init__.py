"""The parts a run is composed of; each adds its simulators to the world through a WorldBuilder."""
