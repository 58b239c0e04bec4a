"""The job service: intake checks, the durable state machine (submit, wait, deliver,
recover), waiting for providers, the per-model queue and the job's working files."""
