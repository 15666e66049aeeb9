module github.com/yggdrasil-cp/yggdrasil/tools/devrun

go 1.26.8

require (
	github.com/yggdrasil-cp/yggdrasil/services/api v0.0.0
	github.com/yggdrasil-cp/yggdrasil/services/hooks v0.0.0
	github.com/yggdrasil-cp/yggdrasil/services/sweeper v0.0.0
	github.com/yggdrasil-cp/yggdrasil/shared v0.0.0
)

replace (
	github.com/yggdrasil-cp/yggdrasil/services/api => ../../services/api
	github.com/yggdrasil-cp/yggdrasil/services/hooks => ../../services/hooks
	github.com/yggdrasil-cp/yggdrasil/services/sweeper => ../../services/sweeper
	github.com/yggdrasil-cp/yggdrasil/shared => ../../shared
)
