// Package owner finds the workload that owns a pod without watching ReplicaSets or Jobs: it
// derives the owner from the pod's controller reference, its labels and the names the
// Kubernetes controllers give to what they create.
//
//   - A ReplicaSet created by a Deployment is named "<deployment>-<pod-template-hash>" and its
//     pods carry the label pod-template-hash=<hash>, so a ReplicaSet owner whose name ends in
//     "-" + that label resolves to Deployment <deployment>. A ReplicaSet without the label
//     (created by hand) stays a ReplicaSet.
//   - A Job created by a CronJob is named "<cronjob>-<scheduled time in minutes since the
//     epoch>", so a Job owner whose name ends in "-<n>" with n between 2015-01-01 and 2100-01-01
//     in minutes resolves to CronJob <cronjob>. A hand-made Job named like that (e.g.
//     "backup-27000000") would be reported as a CronJob's; any other Job stays a Job.
//   - Any other controller (StatefulSet, DaemonSet, a custom kind) is reported as it is.
package owner

import (
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Workload is a pod's owner.
type Workload struct {
	Kind string
	Name string
}

// PodTemplateHashLabel is the label the Deployment controller puts on its pods.
const PodTemplateHashLabel = "pod-template-hash"

var (
	minCronMinutes = time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC).Unix() / 60
	maxCronMinutes = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC).Unix() / 60
)

// Resolve returns the workload owning a pod with these owner references and labels, or the
// zero Workload for a pod without an owner. The controller reference wins; without one the
// first reference is used.
func Resolve(refs []metav1.OwnerReference, labels map[string]string) Workload {
	if len(refs) == 0 {
		return Workload{}
	}
	ref := refs[0]
	for _, r := range refs {
		if r.Controller != nil && *r.Controller {
			ref = r
			break
		}
	}
	w := Workload{Kind: ref.Kind, Name: ref.Name}
	group := ref.APIVersion
	if i := strings.IndexByte(group, '/'); i >= 0 {
		group = group[:i]
	} else {
		group = "" // core group
	}
	if group != "apps" && group != "batch" {
		return w
	}
	switch {
	case group == "apps" && ref.Kind == "ReplicaSet":
		if h := labels[PodTemplateHashLabel]; h != "" {
			if d, ok := strings.CutSuffix(ref.Name, "-"+h); ok && d != "" {
				return Workload{Kind: "Deployment", Name: d}
			}
		}
	case group == "batch" && ref.Kind == "Job":
		if i := strings.LastIndexByte(ref.Name, '-'); i > 0 {
			if n, err := strconv.ParseInt(ref.Name[i+1:], 10, 64); err == nil && ref.Name[i+1] != '+' &&
				n >= minCronMinutes && n < maxCronMinutes {
				return Workload{Kind: "CronJob", Name: ref.Name[:i]}
			}
		}
	}
	return w
}
