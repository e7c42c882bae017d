module keda-conformance/kind/pushseries

go 1.24.0
