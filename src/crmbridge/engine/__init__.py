"""The flows (tables, events, opt-outs) and the runner that schedules them."""
