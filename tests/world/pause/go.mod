// The pause program of the test world's pod sandbox image: holds a pod's namespaces and reaps orphans. Test-world
// only; built by tests/world/parts/node.sh.
module pgrator.test/world/pause

go 1.25.0
