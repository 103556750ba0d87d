import MMSim
let m = try Machine(.reference)
print(m.log.joined(separator: "\n"))
