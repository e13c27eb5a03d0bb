module github.com/p2pxfer/p2pxfer

go 1.26.8
