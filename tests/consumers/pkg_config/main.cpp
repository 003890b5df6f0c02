/*
 * main.cpp - a C++17 program on eq1.hpp, built against an installed eq1 found by pkg-config:
 * connect, subscribe, publish one QoS 1 message, receive it, disconnect.
 *
 *   consumer <host> <port>       prints "round trip OK" and exits 0 on success
 */
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <string>

#include "eq1.hpp"

int main(int argc, char **argv)
{
	if (argc < 3) {
		std::cerr << "usage: " << argv[0] << " <host> <port>\n";
		return 2;
	}
	if (!eq1::version_matches()) {
		std::cerr << "header " << EQ1_VERSION_STRING << " but library " << eq1::version() << "\n";
		return 1;
	}
	const std::string topic = "eq1/consumer/cpp/" + std::to_string(getpid());
	std::mutex mutex;
	std::condition_variable arrived;
	bool received = false;
	try {
		eq1::Client client(eq1::Options().broker(argv[1], std::atoi(argv[2])));
		client.connect(std::chrono::seconds(10));
		client.subscribe(topic, 1, [&](const eq1::Message &msg) {
			std::lock_guard<std::mutex> lock(mutex);
			received = msg.topic() == topic && msg.payload_view() == "hello" && msg.qos() == 1;
			arrived.notify_all();
		});
		client.wait(client.publish(topic, "hello", 1));
		{
			std::unique_lock<std::mutex> lock(mutex);
			arrived.wait_for(lock, std::chrono::seconds(10), [&] { return received; });
		}
		client.disconnect();
	} catch (const eq1::Error &e) {
		std::cerr << "eq1 error: " << e.what() << "\n";
		return 1;
	}
	std::lock_guard<std::mutex> lock(mutex);
	if (!received) {
		std::cerr << "the message did not come back within 10 s\n";
		return 1;
	}
	std::cout << "round trip OK (libeq1 " << eq1::version() << ")" << std::endl;
	return 0;
}
