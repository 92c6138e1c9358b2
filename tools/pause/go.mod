// The pause program of the tests' real cluster: the process that holds each pod's namespaces.
module wspool/tools/pause

go 1.26.0
