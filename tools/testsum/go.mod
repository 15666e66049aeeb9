module github.com/yggdrasil-cp/yggdrasil/tools/testsum

go 1.26.8
