require "comparator-i;ascii-numeric";

if header :contains :is :comparator "i;ascii-numeric" "from" "friep.example.com" {
	keep;
}

keep;
