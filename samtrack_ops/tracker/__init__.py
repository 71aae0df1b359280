"""DeAOT tracker (inference only): configs, network, engine and the streaming Tracker API."""
