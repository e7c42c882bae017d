module keda-conformance/kind/pause

go 1.24.0
