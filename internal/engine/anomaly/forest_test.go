package anomaly

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

// cluster returns n points of a d-dimensional standard Gaussian around
// centre, from a fixed seed.
func cluster(n, d int, centre float64, seed uint64) [][]float64 {
	rng := rand.New(rand.NewPCG(seed, seed))
	out := make([][]float64, n)
	for i := range out {
		out[i] = make([]float64, d)
		for j := range out[i] {
			out[i][j] = centre + rng.NormFloat64()
		}
	}
	return out
}

func TestForestScoresOutliersHigher(t *testing.T) {
	f, err := NewForest(cluster(2000, NumFeatures, 0, 1), ForestConfig{Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	at := func(v float64) []float64 {
		x := make([]float64, NumFeatures)
		for i := range x {
			x[i] = v
		}
		return x
	}
	centre, edge, far, farther := f.Score(at(0)), f.Score(at(2)), f.Score(at(6)), f.Score(at(50))
	if !(centre < edge && edge < far && far <= farther) {
		t.Errorf("scores not ordered by distance: centre %.3f edge %.3f far %.3f farther %.3f", centre, edge, far, farther)
	}
	if centre > 0.5 {
		t.Errorf("centre of the cluster scores %.3f; want ≤ 0.5", centre)
	}
	if far < 0.65 {
		t.Errorf("a point 6σ out in every feature scores %.3f; want ≥ 0.65", far)
	}
	// One feature far out is enough to stand out.
	one := at(0)
	one[3] = 8
	if s := f.Score(one); s < centre+0.05 {
		t.Errorf("one feature 8σ out scores %.3f, not clearly above the centre (%.3f)", s, centre)
	}
	// Held-out inliers score lower on average than held-out outliers.
	var in, out float64
	for _, x := range cluster(200, NumFeatures, 0, 99) {
		in += f.Score(x)
	}
	for _, x := range cluster(200, NumFeatures, 5, 98) {
		out += f.Score(x)
	}
	if in >= out {
		t.Errorf("mean inlier score %.3f ≥ mean outlier score %.3f", in/200, out/200)
	}
}

func TestForestDeterministic(t *testing.T) {
	data := cluster(500, 4, 0, 3)
	a, _ := NewForest(data, ForestConfig{Trees: 50, Seed: 42})
	b, _ := NewForest(data, ForestConfig{Trees: 50, Seed: 42})
	c, _ := NewForest(data, ForestConfig{Trees: 50, Seed: 43})
	differ := false
	for _, x := range cluster(50, 4, 1, 4) {
		if a.Score(x) != b.Score(x) {
			t.Fatalf("same seed, different scores: %v vs %v", a.Score(x), b.Score(x))
		}
		if a.Score(x) != c.Score(x) {
			differ = true
		}
	}
	if !differ {
		t.Error("different seeds gave identical forests")
	}
}

func TestForestDataMatters(t *testing.T) {
	// A point normal for one population is an outlier for another.
	x := []float64{10, 10}
	near, _ := NewForest(cluster(500, 2, 10, 5), ForestConfig{Seed: 1})
	away, _ := NewForest(cluster(500, 2, 0, 5), ForestConfig{Seed: 1})
	if near.Score(x) >= away.Score(x) {
		t.Errorf("score of (10,10): %.3f trained around it, %.3f trained around 0", near.Score(x), away.Score(x))
	}
}

func TestForestDegenerate(t *testing.T) {
	if _, err := NewForest(nil, ForestConfig{}); !errors.Is(err, ErrNoSamples) {
		t.Errorf("no samples: err = %v", err)
	}
	if _, err := NewForest([][]float64{{1, 2}, {1}}, ForestConfig{}); !errors.Is(err, ErrNoSamples) {
		t.Errorf("ragged samples: err = %v", err)
	}
	// All points equal: nothing to split, every tree is one leaf.
	same := [][]float64{{1, 1}, {1, 1}, {1, 1}}
	f, err := NewForest(same, ForestConfig{Trees: 3})
	if err != nil {
		t.Fatal(err)
	}
	if s := f.Score([]float64{1, 1}); s <= 0 || s > 1 {
		t.Errorf("score %v out of (0,1]", s)
	}
	one, _ := NewForest([][]float64{{1}}, ForestConfig{Trees: 2})
	if s := one.Score([]float64{5}); s <= 0 || s > 1 {
		t.Errorf("one-sample forest score %v", s)
	}
	var nilForest *Forest
	if s := nilForest.Score(nil); s != 0.5 {
		t.Errorf("nil forest score %v; want 0.5", s)
	}
}

func TestForestRoundTrip(t *testing.T) {
	f, _ := NewForest(cluster(300, NumFeatures, 0, 8), ForestConfig{Trees: 20, Seed: 9})
	data, err := f.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var g Forest
	if err := g.UnmarshalBinary(data); err != nil {
		t.Fatal(err)
	}
	for _, x := range cluster(50, NumFeatures, 2, 10) {
		if f.Score(x) != g.Score(x) {
			t.Fatalf("decoded forest scores %v, original %v", g.Score(x), f.Score(x))
		}
	}
	again, _ := g.MarshalBinary()
	if string(again) != string(data) {
		t.Error("re-encoding a decoded forest changed the bytes")
	}
	for _, bad := range [][]byte{nil, []byte("TGIF"), data[:len(data)-1], append(append([]byte{}, data...), 0), []byte("XXXX\x01")} {
		if err := new(Forest).UnmarshalBinary(bad); !errors.Is(err, ErrCorrupt) {
			t.Errorf("UnmarshalBinary(%d bytes) = %v; want ErrCorrupt", len(bad), err)
		}
	}
}

func FuzzForestUnmarshal(f *testing.F) {
	small, _ := NewForest(cluster(20, 2, 0, 1), ForestConfig{Trees: 2, SampleSize: 8})
	seed, _ := small.MarshalBinary()
	f.Add(seed)
	f.Fuzz(func(t *testing.T, data []byte) {
		var g Forest
		if g.UnmarshalBinary(data) != nil {
			return
		}
		s := g.Score([]float64{0, 1, 2})
		if s < 0 || s > 1 {
			t.Fatalf("score %v out of range", s) // NaN splits are allowed, but scores stay in range
		}
	})
}

func TestScoreDoesNotAllocate(t *testing.T) {
	f, _ := NewForest(cluster(1000, NumFeatures, 0, 2), ForestConfig{Seed: 1})
	x := Features{CallsPerMin: 3, DistinctDest: 5}.Vector()
	if n := testing.AllocsPerRun(100, func() { f.Score(x) }); n != 0 {
		t.Errorf("Score allocates %v times per call", n)
	}
}

func BenchmarkScore(b *testing.B) {
	f, _ := NewForest(cluster(5000, NumFeatures, 0, 2), ForestConfig{Trees: 100, SampleSize: 256, Seed: 1})
	xs := cluster(1024, NumFeatures, 0.5, 3)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		f.Score(xs[i&1023])
		i++
	}
}

func BenchmarkNewForest(b *testing.B) {
	data := cluster(5000, NumFeatures, 0, 2)
	for b.Loop() {
		if _, err := NewForest(data, ForestConfig{Seed: 1}); err != nil {
			b.Fatal(err)
		}
	}
}

// A feature that never varied in training (no honest call ever went to a
// new country) must still make a point that has it stand out: the forest
// splits on training constants too.
func TestForestIsolatesWhatNeverVaried(t *testing.T) {
	data := cluster(1000, NumFeatures, 0, 11)
	for _, x := range data {
		x[2] = 0 // never seen in training
	}
	f, err := NewForest(data, ForestConfig{Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	usual := make([]float64, NumFeatures)
	odd := make([]float64, NumFeatures)
	odd[2] = 1
	if su, so := f.Score(usual), f.Score(odd); so < su+0.05 {
		t.Errorf("a value never seen in training scores %.3f, an ordinary point %.3f; want clearly higher", so, su)
	}
	below := make([]float64, NumFeatures)
	below[2] = -1
	if s := f.Score(below); s < f.Score(usual)+0.05 {
		t.Errorf("below the training constant scores %.3f", s)
	}
}

// referenceScore is the textbook walk over the stored nodes, one tree at a
// time: Score's interleaved, branch-free walk must give the same number.
func referenceScore(f *Forest, x []float64) float64 {
	var sum float64
	for _, r := range f.roots {
		i, depth := r, 0
		for {
			n := &f.nodes[i]
			if n.feature < 0 {
				sum += float64(depth) + n.split
				break
			}
			var v float64
			if int(n.feature) < len(x) {
				v = x[n.feature]
			}
			if v < n.split {
				i++
			} else {
				i = n.right
			}
			depth++
		}
	}
	return math.Exp2(-sum / float64(len(f.roots)) / f.cpsi)
}

func TestScoreMatchesTheTextbookWalk(t *testing.T) {
	data := cluster(3000, NumFeatures, 0, 21)
	for _, x := range data[:1500] {
		x[5] = 0 // a constant feature, for the one-sided splits
	}
	for _, trees := range []int{1, 15, 16, 17, 100} {
		f, _ := NewForest(data, ForestConfig{Trees: trees, Seed: 5})
		for _, x := range append(cluster(300, NumFeatures, 1, 22), []float64{1, 2}, nil, []float64{math.NaN(), 1, 2, 3, 4, 5, 6, 7}) {
			if got, want := f.Score(x), referenceScore(f, x); math.Abs(got-want) > 1e-12 && !(math.IsNaN(got) && math.IsNaN(want)) {
				t.Fatalf("%d trees: Score %v, textbook walk %v for %v", trees, got, want, x)
			}
		}
	}
}

// A decoded forest whose trees share a node is refused: walking such a
// graph can take exponential time.
func TestForestSharedNodesRefused(t *testing.T) {
	f, _ := NewForest(cluster(50, 2, 0, 1), ForestConfig{Trees: 2, SampleSize: 8})
	g := *f
	g.roots = []int32{f.roots[0], f.roots[0]} // two trees, one set of nodes
	data, _ := g.MarshalBinary()
	if err := new(Forest).UnmarshalBinary(data); !errors.Is(err, ErrCorrupt) {
		t.Errorf("shared nodes: %v; want ErrCorrupt", err)
	}
}

// A decoded forest with a tree deeper than any training makes is refused:
// every score walks to the deepest leaf, so one long chain in a model file
// would make every decision slow.
func TestForestTooDeepRefused(t *testing.T) {
	f, _ := NewForest(cluster(50, 2, 0, 1), ForestConfig{Trees: 1, SampleSize: 8})
	chain := func(n int) *Forest {
		g := *f
		g.nodes = nil
		for i := range n { // a left-leaning chain: node i+1 is the left child of i
			g.nodes = append(g.nodes, node{split: 0.5, feature: 0, right: int32(n + i + 1)})
		}
		g.nodes = append(g.nodes, node{feature: -1})
		for range n {
			g.nodes = append(g.nodes, node{feature: -1})
		}
		g.roots = []int32{0}
		return &g
	}
	ok, _ := chain(maxTreeDepth).MarshalBinary()
	if err := new(Forest).UnmarshalBinary(ok); err != nil {
		t.Fatalf("a tree %d deep: %v; want it accepted", maxTreeDepth, err)
	}
	deep, _ := chain(maxTreeDepth + 1).MarshalBinary()
	if err := new(Forest).UnmarshalBinary(deep); !errors.Is(err, ErrCorrupt) {
		t.Errorf("a tree %d deep: %v; want ErrCorrupt", maxTreeDepth+1, err)
	}
}
