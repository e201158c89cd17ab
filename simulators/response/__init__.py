"""Prosumers' batteries answering a frequency at a fast step beside the slower fleet (scenario
``frequency_response:``)."""
