// Prints, for every status the library lists, the eq1.hpp exception class throw_error() picks:
// "<number> <class>" per line. tests/python/test_status_table.py compares it with the table.
#include <cstdio>

#include "eq1.hpp"

static const char *class_of(const eq1::Error &e)
{
	// Most derived first; all of them derive from eq1::Error.
	if (dynamic_cast<const eq1::ValidationError *>(&e))
		return "ValidationError";
	if (dynamic_cast<const eq1::ConnectionError *>(&e))
		return "ConnectionError";
	if (dynamic_cast<const eq1::AuthenticationError *>(&e))
		return "AuthenticationError";
	if (dynamic_cast<const eq1::ProtocolError *>(&e))
		return "ProtocolError";
	return "Error";
}

int main()
{
	for (std::size_t i = 0; i < eq1_status_count(); ++i) {
		const int number = eq1_status_at(i);
		const char *name = "none";
		try {
			eq1::throw_error(static_cast<eq1_status>(number), "");
		} catch (const eq1::Error &e) {
			name = class_of(e);
		}
		std::printf("%d %s\n", number, name);
	}
	return 0;
}
