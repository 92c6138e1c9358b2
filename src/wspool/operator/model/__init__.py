"""Pure logic of the operator: the pool spec, the objects it becomes, the status and its
conditions, the autoscaling rule, the operator's own settings. No I/O here; ``operator/`` does
the I/O around it (the Kubernetes API, Kopf handlers, Redis)."""
