package system

import (
	"flag"
	"os"
	"strconv"
	"testing"
)

// scenariosAtOnce is how many scenarios run at once unless -parallel says otherwise. A
// scenario spends most of its time waiting on its own clock (the workload's seconds, an
// outage, S3 faults held for seconds, the archiver's object age), not on the CPU, so the
// default of -parallel (GOMAXPROCS: 2 on CI) would leave the package's time near the sum of
// its scenarios'. More than 4 at once on 2 loaded cores starved the brokers (every kfake runs
// in this race-instrumented process): archivers lost their group sessions (6 s) for minutes.
const scenariosAtOnce = 4

func TestMain(m *testing.M) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		if err := flag.Set("test.parallel", strconv.Itoa(scenariosAtOnce)); err != nil {
			panic(err)
		}
	}
	os.Exit(m.Run())
}
