/*
 * example.cpp - the design's quick start in C++ (eq1.hpp): connect, subscribe with a lambda,
 * publish "Hello MQTT!" at QoS 1, receive it, disconnect.
 *
 *   c++ -std=c++17 example.cpp -I include -I bindings/cpp -L target/release -leq1 -o example
 *   ./example [host] [port]          (default localhost 1883)
 */
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <string>

#include "eq1.hpp"

int main(int argc, char **argv)
{
	const std::string host = argc > 1 ? argv[1] : "localhost";
	const int port = argc > 2 ? std::atoi(argv[2]) : 1883;

	// What the subscription received; the handler runs on the client's dispatcher thread.
	std::mutex mutex;
	std::condition_variable arrived;
	bool received = false;

	try {
		// 1-2. Options and client (the client keeps its own copy of the options).
		eq1::Client client(eq1::Options()
					   .broker(host, port)
					   .connect_timeout(std::chrono::seconds(60)));

		// 3. Connect
		client.connect();
		std::cout << "Connected to " << host << ":" << port << std::endl;

		// 4-5. Subscribe with a lambda; the message is borrowed until it returns.
		int granted = client.subscribe("test/topic", 1, [&](const eq1::Message &msg) {
			std::cout << "Received: [" << msg.topic() << "] " << msg.payload_view()
				  << std::endl;
			std::lock_guard<std::mutex> lock(mutex);
			received = true;
			arrived.notify_all();
		});
		std::cout << "Subscribed to test/topic (granted QoS " << granted << ")" << std::endl;

		// 6. Publish at QoS 1 and wait for the broker's PUBACK.
		eq1::Token token = client.publish("test/topic", "Hello MQTT!", 1);
		client.wait(token, std::chrono::seconds(5));
		std::cout << "Published (token " << token << " acknowledged)" << std::endl;

		// Wait (up to 5 s) for our own message to come back through the subscription.
		{
			std::unique_lock<std::mutex> lock(mutex);
			arrived.wait_for(lock, std::chrono::seconds(5), [&] { return received; });
		}

		// 7. Disconnect; the destructor frees the client.
		client.disconnect(std::chrono::seconds(5));
		std::cout << "Disconnected" << std::endl;
	} catch (const eq1::Error &e) {
		// e.what() = status description + the library's detail message.
		std::cerr << "eq1 error " << e.status() << ": " << e.what() << std::endl;
		return 1;
	}
	std::lock_guard<std::mutex> lock(mutex);
	return received ? 0 : 2;
}
