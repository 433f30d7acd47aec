"""The reference Event Management Engine: the events API, its plugin system, /health and
/metrics, served over HTTP so the functional suite has a real service to hold to its contract."""
