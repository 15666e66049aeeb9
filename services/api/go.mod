module github.com/yggdrasil-cp/yggdrasil/services/api

go 1.26.8

require github.com/yggdrasil-cp/yggdrasil/shared v0.0.0

replace github.com/yggdrasil-cp/yggdrasil/shared => ../../shared
