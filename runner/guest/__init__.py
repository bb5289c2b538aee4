"""The guest machine: QEMU and its teardown, the guest's image and saved states, and
the agent that runs the guest's terminals (agent/, stdlib only, PID 1 in the guest)."""
