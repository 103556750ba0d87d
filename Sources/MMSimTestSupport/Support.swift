@_exported import MMSim
