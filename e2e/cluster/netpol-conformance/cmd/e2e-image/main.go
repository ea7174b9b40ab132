// Command e2e-image prints the name the pinned e2e framework gives the agnhost image, so `run`
// imports the locally built image under exactly the name the specs will ask the kubelet for.
package main

import (
	"fmt"

	imageutils "k8s.io/kubernetes/test/utils/image"
)

func main() {
	fmt.Println(imageutils.GetE2EImage(imageutils.Agnhost))
}
