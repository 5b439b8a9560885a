package synth

// goldenItems pins Generate(1, 1, []int{3}, Kinds) as (id, question,
// gold), so that a change to the generator, which would silently change
// benchmark files made from a seed, fails a test.
var goldenItems = [][3]string{
	{"synth-arith-k3-0000",
		"Eli has 42 pencils. First, he quadruples the number of pencils. Then, he finds 7 more pencils. Finally, he finds 15 more pencils. How many pencils does Eli have now?",
		"190"},
	{"synth-list-k3-0000",
		"Start with the list [25, 10, 1, 26, 24, 24, 10, 10]. Apply these operations in order:\n1. Keep only the even numbers.\n2. Reverse the list.\n3. Keep only the first 2 numbers.\nWhat is the sum of the numbers in the final list?",
		"20"},
	{"synth-string-k3-0000",
		"Start with the string \"saddle\". Apply these operations in order (upper- and lower-case letters are different characters):\n1. Replace every \"e\" with \"n\".\n2. Keep only the last 3 characters.\n3. Convert the string to uppercase.\nWhat is the final string?",
		"DLN"},
	{"synth-order-k3-0000",
		"4 people stand in a line, in positions numbered 1 to 4 from left to right: Ivan, Rosa, Abel, Cara (in no particular order). There is exactly 1 person between Rosa and Cara. Ivan is somewhere to the right of Abel. Abel is somewhere to the right of Rosa. Who is in position 3?",
		"Cara"},
	{"synth-truth-k3-0000",
		"Every person below either always tells the truth or always lies. Yusuf tells the truth. Mia says Yusuf tells the truth. Omar says Mia tells the truth. Vic says Omar tells the truth. Does Vic tell the truth?",
		"yes"},
}
